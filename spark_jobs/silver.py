"""Silver: typed, deduplicated, validated. Failing rows go to quarantine with the rules broken.

    spark-submit spark_jobs/silver.py --date 2026-01-01

Each table's quality rules are declared once, beside its transform (``*_QUALITY``); the Dagster
assets turn every rule into an asset check. Per table and window:
Bronze rows = Silver rows + quarantined rows + duplicates removed.

``clean_*`` functions are pure transforms (DataFrames in, a ``Split`` out); ``run_table``
reads Bronze, evaluates the rules, writes Silver and its quarantine table, and reports.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spark_jobs import held, storage  # noqa: E402
from spark_jobs import quality as q  # noqa: E402
from spark_jobs.quality import RULES_COLUMN, WARNINGS_COLUMN, Rule, TableRules, Verdict  # noqa: E402
from spark_jobs.settings import Settings  # noqa: E402
from spark_jobs.window import DayWindow  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

BRONZE_PARTITION = "_partition_date"
SEGMENTS = ("consumer", "corporate", "small_business")
REGIONS = ("north", "south", "east", "west")
ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")
EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "search")
# A duplicate event can land up to this many days after its original.
DEDUP_LOOKBACK_DAYS = 7
RAW_LINE = "_raw_line"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Split:
    """What validation made of a batch."""

    valid: DataFrame  # kept rows, with the warn rules they broke in _rules_warned
    quarantined: DataFrame  # the quarantine table's rows
    duplicates: DataFrame
    schema_broken: DataFrame | None = None  # rows without a required field
    new_fields: DataFrame | None = None  # one row per (field, record) not in the known fields
    mistyped: DataFrame | None = None  # rows with a value of another type than declared


@dataclass(frozen=True)
class Lateness:
    """How long a row may wait for a reference (a customer, a product) that has not arrived.

    ``as_of`` is the newest day the lakehouse holds for the table, not the wall clock, so a
    backfill judges the same rows the same way whenever it runs. Without it (a pure transform
    on its own) a missing reference is final at once.
    """

    as_of: date | None = None
    grace_days: int = 3

    def past_grace(self) -> Column:
        F = _F()
        if self.as_of is None:
            return F.lit(True)
        age = F.datediff(F.lit(self.as_of), F.col(f"_bronze.{BRONZE_PARTITION}"))
        return age > F.lit(self.grace_days)


@dataclass(frozen=True)
class Batch:
    """What a run hands a table's transform besides its Bronze rows."""

    window: DayWindow
    run_id: str
    lateness: Lateness = field(default_factory=Lateness)


@dataclass(frozen=True)
class SilverResult:
    table: str
    bronze_rows: int
    rows: int
    quarantined: int
    duplicates: int
    rules: dict[str, int]
    snapshot_id: int | None
    verdicts: list[Verdict] = field(default_factory=list)
    written: bool = True
    held_rechecked: int = 0  # held rows of earlier days, evaluated again
    released: int = 0  # of those, rows whose reference has arrived: now in Silver
    awaiting: int = 0  # rows of any day still held, after this run
    # Per day of the window: Bronze rows read, rows kept, quarantined and dropped as
    # duplicates (these reconcile), and the table rows the day's batch wrote (events become
    # one row per product and warehouse in silver.inventory).
    bronze_per_day: dict[str, int] = field(default_factory=dict)
    kept_per_day: dict[str, int] = field(default_factory=dict)
    quarantined_per_day: dict[str, int] = field(default_factory=dict)
    duplicates_per_day: dict[str, int] = field(default_factory=dict)
    written_per_day: dict[str, int] = field(default_factory=dict)
    table_rows: int | None = None  # the Silver table's rows after the write

    def batch_rows_on(self, day: str) -> int:
        """The window's rows of ``day`` that were judged: kept or quarantined."""
        return self.kept_per_day.get(day, 0) + self.quarantined_per_day.get(day, 0)

    @property
    def reconciles(self) -> bool:
        batch = self.bronze_rows + self.held_rechecked
        return batch == self.rows + self.quarantined + self.duplicates


# ------------------------------------------------------------------ shared pieces
def _F():
    from pyspark.sql import functions as F

    return F


def _latest_first() -> list[Column]:
    F = _F()
    return [F.col("updated_at").desc_nulls_last(), F.col("_ingested_at").desc()]


def _first_landed() -> list[Column]:
    F = _F()
    # Landing day, then landing time: a file that arrived later loses, whatever its name.
    order = (BRONZE_PARTITION, "_landed_at", "_source_file", "_line_number")
    return [F.col(f"_bronze.{c}") for c in order]


def _bronze_record(df: DataFrame) -> DataFrame:
    """Keep the untouched Bronze row beside the typed columns, for quarantine."""
    F = _F()
    return df.withColumn("_bronze", F.struct(*[F.col(c) for c in df.columns]))


def quarantine_rows(bad: DataFrame, key: Column, run_id: str) -> DataFrame:
    """The quarantine table's shape, the same for every Silver table."""
    F = _F()
    return bad.select(
        F.col(f"_bronze.{BRONZE_PARTITION}").alias(BRONZE_PARTITION),
        key.cast("string").alias("record_key"),
        F.col(RULES_COLUMN).alias("rules"),
        F.to_json("_bronze").alias("record"),
        F.lit(run_id).alias("_run_id"),
        F.current_timestamp().alias("_quarantined_at"),
    )


def _line_key() -> Column:
    F = _F()
    return F.concat_ws(":", "_bronze._source_file", "_bronze._line_number")


def _parse_json(df: DataFrame, required: dict[str, str]) -> DataFrame:
    """Read ``raw_line`` as a JSON object of text values, and say what is wrong with its shape.

    Every value is kept as text (``_raw``) and converted field by field later, so one value of
    another type (``"user_id": "abc"``) is that row's dirt, not a broken batch.
    ``_fields``: the keys the line really has (NULL when the line is not a JSON object);
    ``_schema_broken``: a required field is absent.
    """
    F = _F()
    parsed = (
        _bronze_record(df)
        .withColumn("_raw", F.from_json(F.col("raw_line"), "map<string,string>"))
        .withColumn("_fields", F.map_keys("_raw"))
    )
    missing = F.filter(
        F.array(*[F.lit(f) for f in required]), lambda f: ~F.array_contains("_fields", f)
    )
    return parsed.withColumns(
        {
            "_missing_fields": missing,
            "_schema_broken": F.col("_fields").isNotNull() & (F.size(missing) > 0),
        }
    )


def _convert(raw: Column, kind: str) -> Column:
    """Text to its declared type; NULL when it does not convert (``"7.5"`` is not a long)."""
    F = _F()
    if kind in ("int", "long"):
        return F.when(raw.rlike(r"^\s*-?[0-9]+\s*$"), F.trim(raw).cast(kind))
    if kind == "timestamp":
        return F.to_timestamp(raw)
    return raw if kind == "string" else raw.cast(kind)


def _json_columns(fields: dict[str, str], renamed: dict[str, str]) -> list[Column]:
    """Each field as ``<name>_raw`` (its text) and ``<name>`` (converted), plus ``_mistyped``:
    a value is there but does not convert to its type."""
    F = _F()
    out, mistyped = [], F.lit(False)
    for field_name, kind in fields.items():
        name = renamed.get(field_name, field_name)
        raw = F.col("_raw").getItem(field_name)
        out += [raw.alias(f"{name}_raw"), _convert(raw, kind).alias(name)]
        if kind != "string":
            mistyped = mistyped | (raw.isNotNull() & _convert(raw, kind).isNull())
    return [*out, mistyped.alias("_mistyped")]


def _types_rule(fields: dict[str, str]) -> Rule:
    typed = [f"{k} {v}" for k, v in fields.items() if v != "string"]
    return Rule(
        "field_types_valid",
        "parses",
        lambda: _F().col("_mistyped"),
        "drop",
        "every value converts to its type: " + ", ".join(typed),
    )


MALFORMED_JSON = Rule(
    "malformed_json",
    "parses",
    lambda: _F().col("_fields").isNull(),
    "drop",
    "the line is a JSON object",
)
INVALID_UTF8 = Rule(
    "invalid_utf8",
    "parses",
    lambda: _F().col("_bronze._raw_bytes").isNotNull(),
    "drop",
    "the line is valid UTF-8 (Bronze keeps its original bytes)",
)


def _json_rules(fields: dict[str, str], field_rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Field rules apply to lines that are JSON; a malformed line breaks only that rule."""
    on_json = (_types_rule(fields), *field_rules)
    return (
        INVALID_UTF8,
        MALFORMED_JSON,
        *[r.where(lambda: _F().col("_fields").isNotNull()) for r in on_json],
    )


def _new_fields(parsed: DataFrame, known: list[str]) -> DataFrame:
    F = _F()
    return parsed.select(
        F.explode(F.array_except("_fields", F.array(*[F.lit(k) for k in known]))).alias("field"),
        _line_key().alias("record_key"),
    )


def _typed(bronze: DataFrame, types: dict[str, str], raw: tuple[str, ...] = ()) -> DataFrame:
    """Bronze columns cast to their Silver types, beside the untouched Bronze row.

    ``raw`` columns are also kept as text (``<name>_raw``), so a value that failed to convert
    can be told from a value that was missing.
    """
    F = _F()

    def cast(name: str, kind: str) -> Column:
        converted = F.to_timestamp(F.col(name)) if kind == "timestamp" else F.col(name).cast(kind)
        return converted.alias(name)

    return _bronze_record(bronze).select(
        "_bronze",
        "_ingested_at",
        *[F.col(name).cast("string").alias(f"{name}_raw") for name in raw],
        *[cast(name, kind) for name, kind in types.items()],
    )


def _current_state(
    typed: DataFrame,
    key: str,
    quality: TableRules,
    columns: list,
    run_id: str,
    checked: Callable[[DataFrame], DataFrame] = lambda latest: latest,
) -> Split:
    """Latest version per key (by ``updated_at``), validated: a current-state table's batch."""
    F = _F()
    latest, duplicates = q.keep_first(typed, [key], _latest_first())
    valid, bad = q.apply_rules(checked(latest), quality.rows)
    return Split(
        valid.select(
            *columns,
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("_ingest_date"),
            F.lit(run_id).alias("_run_id"),
            WARNINGS_COLUMN,
        ),
        quarantine_rows(bad, F.col(key), run_id),
        duplicates,
    )


# ------------------------------------------------------------------ customers
CUSTOMERS_QUALITY = TableRules(
    rows=(
        q.not_null("customer_id", action="fail"),
        q.not_null("email", action="warn"),
        q.accepted_values("segment", SEGMENTS),
        q.accepted_values("region", REGIONS),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
    ),
    checks=(
        q.schema({c: "any" for c in ("customer_id", "email", "segment", "region", "updated_at")}),
        q.reconciles(),
        q.unique(["customer_id"]),
    ),
)


CUSTOMER_TYPES = {
    "customer_id": "long",
    "name": "string",
    "email": "string",
    "segment": "string",
    "region": "string",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}


def clean_customers(bronze: DataFrame, run_id: str) -> Split:
    typed = _typed(bronze, CUSTOMER_TYPES, raw=("updated_at",))
    return _current_state(typed, "customer_id", CUSTOMERS_QUALITY, list(CUSTOMER_TYPES), run_id)


# ------------------------------------------------------------------ products
PRODUCTS_QUALITY = TableRules(
    rows=(
        q.not_null("product_id", action="fail"),
        q.not_null("category"),
        q.not_null("unit_price"),
        # Without a cost, profit and margin would turn NULL in Gold without a word.
        q.not_null("unit_cost"),
        q.between("unit_price", 0, name="unit_price_non_negative"),
        q.between("unit_cost", 0, name="unit_cost_non_negative"),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
    ),
    checks=(
        q.schema({c: "any" for c in ("product_id", "category", "unit_price", "unit_cost")}),
        q.reconciles(),
        q.unique(["product_id"]),
    ),
)


PRODUCT_TYPES = {
    "product_id": "long",
    "name": "string",
    "category": "string",
    "unit_price": "decimal(12,2)",
    "unit_cost": "decimal(12,2)",
    "updated_at": "timestamp",
}


def clean_products(bronze: DataFrame, run_id: str) -> Split:
    typed = _typed(bronze, PRODUCT_TYPES, raw=("updated_at",))
    return _current_state(typed, "product_id", PRODUCTS_QUALITY, list(PRODUCT_TYPES), run_id)


# ------------------------------------------------------------------ orders
ORDERS_QUALITY = TableRules(
    rows=(
        q.not_null("order_id", action="fail"),
        q.not_null("customer_id"),
        q.not_null("product_id"),
        q.not_null("amount"),
        q.between("quantity", 0, strict_low=True, name="quantity_positive"),
        q.between("quantity", high=50, name="quantity_plausible", action="warn"),
        q.between("amount", 0, name="amount_non_negative"),
        q.accepted_values("status", ORDER_STATUSES),
        q.not_null("order_ts", raw="order_ts_raw"),
        q.parses("order_ts_raw", "order_ts"),
        # An order placed after the day it was extracted (a 2099 typo) is dirt, not a partition.
        q.within_days("order_ts", f"_bronze.{BRONZE_PARTITION}"),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
        *q.references("customer_id", "_customer_found", "silver.customers", "customer"),
        *q.references("product_id", "_product_found", "silver.products", "product"),
    ),
    checks=(
        q.schema(
            {
                c: "any"
                for c in ("order_id", "customer_id", "product_id", "quantity", "amount")
                + ("status", "order_ts", "updated_at")
            }
        ),
        q.reconciles(),
        q.unique(["order_id"]),
        q.row_count_band(),
        q.freshness("updated_at", max_lag_hours=6),
    ),
)


ORDER_TYPES = {
    "order_id": "long",
    "customer_id": "long",
    "product_id": "long",
    "quantity": "int",
    "amount": "decimal(12,2)",
    "status": "string",
    "order_ts": "timestamp",
    "updated_at": "timestamp",
}


def clean_orders(
    bronze: DataFrame,
    customers: DataFrame | None,
    products: DataFrame | None,
    run_id: str,
    lateness: Lateness | None = None,
) -> Split:
    """Latest version per order, typed, and checked against the whole of Silver's customers
    and products; an order whose customer or product has not arrived yet is held."""
    F = _F()
    lateness = lateness or Lateness()

    def with_references(latest: DataFrame) -> DataFrame:
        checked = _with_reference(latest, customers, "customer_id", "_customer_found")
        checked = _with_reference(checked, products, "product_id", "_product_found")
        return checked.withColumn(q.PAST_GRACE, lateness.past_grace())

    columns = [*ORDER_TYPES, F.to_date("order_ts").alias("order_date")]
    typed = _typed(bronze, ORDER_TYPES, raw=("order_ts", "updated_at"))
    return _current_state(typed, "order_id", ORDERS_QUALITY, columns, run_id, with_references)


# ------------------------------------------------------------------ clickstream
CLICKSTREAM_JSON = {
    "event_id": "string",
    "user_id": "long",
    "session_id": "string",
    "event_type": "string",
    "page_url": "string",
    "timestamp": "timestamp",
    "properties": "string",
}
CLICKSTREAM_REQUIRED = {
    k: CLICKSTREAM_JSON[k] for k in ("event_id", "user_id", "event_type", "timestamp")
}
LANDING_DAY = f"_bronze.{BRONZE_PARTITION}"

CLICKSTREAM_QUALITY = TableRules(
    rows=_json_rules(
        CLICKSTREAM_JSON,
        (
            q.not_null("event_id", action="fail"),
            q.not_null("user_id", raw="user_id_raw"),
            q.not_null("event_ts", raw="event_ts_raw"),
            # Older than the dedup look-back, a redelivery could not be told from an event.
            q.within_days("event_ts", LANDING_DAY, before_days=DEDUP_LOOKBACK_DAYS),
            q.accepted_values("event_type", EVENT_TYPES),
            q.not_null("session_id", action="warn"),
            *q.references("product_id", "_product_found", "silver.products", "product"),
        ),
    ),
    checks=(
        q.schema(CLICKSTREAM_REQUIRED),
        q.new_fields(list(CLICKSTREAM_JSON)),
        q.reconciles(),
        q.unique(["event_id"]),
        q.row_count_band(),
        q.freshness("event_ts", max_lag_hours=2),
    ),
)


def _known(dimension: DataFrame | None, key: str, found: str) -> DataFrame | None:
    F = _F()
    if dimension is None:
        return None
    return dimension.select(F.col(key).alias(f"_known_{key}"), F.lit(True).alias(found)).distinct()


def _with_reference(
    df: DataFrame, dimension: DataFrame | None, key: str, found: str, column: str | None = None
) -> DataFrame:
    """``found`` is TRUE where ``column`` names a row of the whole ``dimension`` (not only
    the window's); no dimension given: every reference counts as found."""
    F = _F()
    known = _known(dimension, key, found)
    if known is None:
        return df.withColumn(found, F.lit(True))
    return df.join(known, df[column or key] == known[f"_known_{key}"], "left").drop(f"_known_{key}")


def clean_clickstream(
    bronze: DataFrame,
    earlier_event_ids: DataFrame | None,
    run_id: str,
    products: DataFrame | None = None,
    lateness: Lateness | None = None,
) -> Split:
    """Parse each raw line; one row per event_id, the first landed wins.

    ``earlier_event_ids`` are the ids Silver already holds from days before the window: an
    event redelivered on a later day is a duplicate, not a new event. A click on a product
    Silver does not know yet is held until the product arrives.
    """
    F = _F()
    lateness = lateness or Lateness()
    parsed = _parse_json(bronze, CLICKSTREAM_REQUIRED)
    typed = parsed.select(
        "_bronze",
        "_fields",
        "_schema_broken",
        *_json_columns(CLICKSTREAM_JSON, {"timestamp": "event_ts"}),
    ).withColumn("product_id", F.get_json_object("properties", "$.product_id").cast("long"))
    kept, duplicates = q.keep_first(typed, ["event_id"], _first_landed())
    if earlier_event_ids is not None:
        seen = earlier_event_ids.select(F.col("event_id").alias("_seen")).distinct()
        kept = kept.join(seen, kept.event_id == seen._seen, "left")
        duplicates = duplicates.unionByName(kept.where(F.col("_seen").isNotNull()).drop("_seen"))
        kept = kept.where(F.col("_seen").isNull()).drop("_seen")
    checked = _with_reference(kept, products, "product_id", "_product_found").withColumn(
        q.PAST_GRACE, lateness.past_grace()
    )
    valid, bad = q.apply_rules(checked, CLICKSTREAM_QUALITY.rows)
    return Split(
        valid.select(
            "event_id",
            "user_id",
            "session_id",
            "event_type",
            "page_url",
            "event_ts",
            F.to_date("event_ts").alias("event_date"),
            F.hour("event_ts").alias("event_hour"),
            "product_id",
            F.get_json_object("properties", "$.order_id").cast("long").alias("order_id"),
            "properties",
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("ingest_date"),
            F.col("_bronze._source_file").alias("_source_file"),
            F.col("_bronze._line_number").alias("_line_number"),
            F.lit(run_id).alias("_run_id"),
            WARNINGS_COLUMN,
            F.col("_bronze.raw_line").alias(RAW_LINE),  # for additive schema evolution
        ),
        quarantine_rows(bad, F.coalesce(F.col("event_id"), _line_key()), run_id),
        duplicates,
        schema_broken=parsed.where("_schema_broken").select(_line_key().alias("record_key")),
        new_fields=_new_fields(parsed, list(CLICKSTREAM_JSON)),
        mistyped=typed.where("_mistyped").select(_line_key().alias("record_key")),
    )


# ------------------------------------------------------------------ inventory
INVENTORY_JSON = {
    "topic": "string",
    "partition": "int",
    "offset": "long",
    "key": "string",
    "event_id": "string",
    "product_id": "long",
    "warehouse_id": "string",
    "change": "long",
    "stock_level": "long",
    "reason": "string",
    "event_ts": "timestamp",
}
INVENTORY_REQUIRED = {
    k: INVENTORY_JSON[k]
    for k in ("topic", "partition", "offset", "product_id", "warehouse_id", "change")
    + ("stock_level", "event_ts")
}

INVENTORY_QUALITY = TableRules(
    rows=_json_rules(
        INVENTORY_JSON,
        (
            q.not_null("product_id", raw="product_id_raw"),
            q.not_null("warehouse_id"),
            q.not_null("stock_level", raw="stock_level_raw"),
            q.not_null("event_ts", raw="event_ts_raw"),
            q.within_days("event_ts", LANDING_DAY, before_days=DEDUP_LOOKBACK_DAYS),
            q.between("stock_level", 0, name="stock_level_non_negative"),
            *q.references("product_id", "_product_found", "silver.products", "product"),
        ),
    ),
    checks=(
        q.schema(INVENTORY_REQUIRED),
        q.new_fields(list(INVENTORY_JSON)),
        q.reconciles(),
        q.unique(["snapshot_date", "product_id", "warehouse_id"]),
    ),
)


def clean_inventory_events(
    bronze: DataFrame,
    products: DataFrame | None,
    run_id: str,
    lateness: Lateness | None = None,
) -> Split:
    """Parse Kafka-sink lines; a redelivered offset is a duplicate."""
    F = _F()
    lateness = lateness or Lateness()
    parsed = _parse_json(bronze, INVENTORY_REQUIRED)
    typed = parsed.select(
        "_bronze", "_fields", "_schema_broken", *_json_columns(INVENTORY_JSON, {})
    )
    kept, duplicates = q.keep_first(typed, ["topic", "partition", "offset"], _first_landed())
    checked = _with_reference(kept, products, "product_id", "_product_found").withColumn(
        q.PAST_GRACE, lateness.past_grace()
    )
    valid, bad = q.apply_rules(checked, INVENTORY_QUALITY.rows)
    offset_key = F.concat_ws(":", "topic", "partition", "offset")
    return Split(
        valid.withColumn("snapshot_date", F.col(f"_bronze.{BRONZE_PARTITION}")),
        quarantine_rows(
            bad, F.when(F.col("offset").isNotNull(), offset_key).otherwise(_line_key()), run_id
        ),
        duplicates,
        schema_broken=parsed.where("_schema_broken").select(_line_key().alias("record_key")),
        new_fields=_new_fields(parsed, list(INVENTORY_JSON)),
        mistyped=typed.where("_mistyped").select(_line_key().alias("record_key")),
    )


def daily_stock(events: DataFrame, run_id: str) -> DataFrame:
    """Stock per product and warehouse at the end of each day, with the day's movements."""
    F = _F()
    last = F.max_by(
        F.col("stock_level"), F.struct(F.col("event_ts"), F.col("partition"), F.col("offset"))
    )
    return events.groupBy("snapshot_date", "product_id", "warehouse_id").agg(
        last.alias("stock_level"),
        F.sum(F.when(F.col("reason") == "sale", -F.col("change")).otherwise(0))
        .cast("long")
        .alias("units_sold"),
        F.sum(F.when(F.col("change") > 0, F.col("change")).otherwise(0))
        .cast("long")
        .alias("units_received"),
        F.count(F.lit(1)).alias("events"),
        F.max("event_ts").alias("last_event_ts"),
        F.lit(run_id).alias("_run_id"),
    )


# ------------------------------------------------------------------ running a table
@dataclass(frozen=True)
class SilverTable:
    """How one Silver table is built: its Bronze source, transform, writer and rules."""

    name: str
    bronze: str
    quality: TableRules
    clean: Callable[[SparkSession, DataFrame, Batch], Split]
    write: Callable[[DataFrame, str, DayWindow], None]
    batch_day: str  # column of the kept rows holding their Bronze day
    unique_scope: str | None = None  # day column scoping the uniqueness check; None: whole table
    # What is written from the kept rows (inventory writes daily aggregates of its events).
    to_table: Callable[[DataFrame, str], DataFrame] = lambda valid, run_id: valid

    @property
    def quarantine(self) -> str:
        return storage.table_name("silver", f"{self.name}_quarantine")

    @property
    def holds(self) -> list[str]:
        """The rules that hold rows for a late reference; empty: the table holds none."""
        return held.reference_rules(self.quality)


def _bronze(spark: SparkSession, table: str, window: DayWindow) -> DataFrame:
    return spark.table(storage.table_name("bronze", table)).where(
        storage.window_condition(BRONZE_PARTITION, window)
    )


def _rows_per_day(df: DataFrame, column: str) -> dict[str, int]:
    return {str(r[0]): r[1] for r in df.groupBy(column).count().collect()}


def _split_by_day(df: DataFrame, column: str, inside: Column) -> tuple[int, dict[str, int]]:
    """All rows, and the rows of each day of the window (``inside``), in one pass."""
    F = _F()
    day = F.when(inside, F.col(column).cast("string"))
    counts = {r[0]: r[1] for r in df.groupBy(day).count().collect()}
    return sum(counts.values()), {d: n for d, n in counts.items() if d is not None}


def _keys(df: DataFrame | None, limit: int = q.SAMPLE_SIZE) -> tuple[int, list[str]]:
    if df is None:
        return 0, []
    n = df.count()
    return n, [r.record_key for r in df.limit(limit).collect()] if n else []


def _schema_verdict(table: SilverTable, bronze: DataFrame, split: Split, batch: int) -> Verdict:
    check = next(c for c in table.quality.checks if c.kind == "schema")
    if "raw_line" not in bronze.columns:  # a database table: its columns are its schema
        missing = [c for c in check.params["required"] if c not in bronze.columns]
        return q.judge_counts(check, len(missing), missing, missing_columns=missing)
    broken, sample = _keys(split.schema_broken)
    mistyped, typed_sample = _keys(split.mistyped)
    # A few values of another type are row dirt (quarantined as field_types_valid); many
    # are the source changing a type, which must stop the table like a removed field.
    drifted = bool(batch) and mistyped / batch > check.params["max_mistyped"]
    failing = broken + (mistyped if drifted else 0)
    return q.judge_counts(
        check,
        failing,
        sample + (typed_sample if drifted else []),
        rows_missing_fields=broken,
        rows_mistyped=mistyped,
    )


def _table_verdicts(
    spark: SparkSession,
    table: SilverTable,
    window: DayWindow,
    valid: DataFrame,
    split: Split,
    counts: dict[str, int],
    bronze_per_day: dict[str, int],
) -> list[Verdict]:
    F = _F()
    out = []
    for check in table.quality.checks:
        if check.kind == "reconciles":
            batch = counts["bronze_rows"] + counts["held_rechecked"]
            gap = batch - counts["silver_rows"] - counts["quarantined"]
            out.append(q.judge_counts(check, abs(gap - counts["duplicates_removed"]), **counts))
        elif check.kind == "unique":
            written = spark.table(storage.table_name("silver", table.name))
            if table.unique_scope:
                written = written.where(storage.window_condition(table.unique_scope, window))
            out.append(q.judge_unique(check, written))
        elif check.kind == "row_count_band":
            lookback = check.params["lookback_days"]
            before = DayWindow(window.start - timedelta(days=lookback), window.start)
            history = _rows_per_day(_bronze(spark, table.bronze, before), BRONZE_PARTITION)
            out.append(q.judge_row_count_band(check, bronze_per_day, {**history, **bronze_per_day}))
        elif check.kind == "freshness":
            column, day = F.col(check.params["column"]), F.col(table.batch_day)
            # A timestamp after the day's end says nothing about that day's freshness.
            on_time = F.when(column < F.to_timestamp(F.date_add(day, 1)), column)
            latest = (
                valid.where(storage.window_condition(table.batch_day, window))
                .groupBy(table.batch_day)
                .agg(F.max(on_time))
                .collect()
            )
            per_day = {d.isoformat(): None for d in window.days if d.isoformat() in bronze_per_day}
            per_day.update({str(r[0]): r[1] for r in latest})
            out.append(q.judge_freshness(check, per_day))
        elif check.kind == "new_fields" and split.new_fields is not None:
            fields = split.new_fields.groupBy("field").count().collect()
            out.append(
                q.judge_counts(
                    check,
                    sum(r["count"] for r in fields),
                    sorted(r.field for r in fields),
                    new_fields={r.field: r["count"] for r in fields},
                )
            )
    return out


def evolve(rows: DataFrame, new_fields: list[str]) -> DataFrame:
    """Add new top-level JSON fields as string columns (additive evolution, opt-in)."""
    F = _F()
    fields = [f for f in new_fields if _FIELD_NAME.match(f) and f not in rows.columns]
    return rows.withColumns({f: F.get_json_object(F.col(RAW_LINE), f"$.{f}") for f in fields})


def run_table(
    spark: SparkSession,
    table: SilverTable,
    window: DayWindow,
    run_id: str,
    evolve_schema: bool = False,
    grace_days: int = 3,
) -> SilverResult:
    """Validate the window's Bronze rows and, unless the schema check fails, write Silver.

    Rows of earlier days held for a late reference are evaluated again with them. With
    ``evolve_schema``, fields that are new in the incoming JSON become Silver columns;
    otherwise they are only reported (Bronze keeps them in the raw line either way).
    """
    F = _F()
    name = storage.table_name("silver", table.name)
    bronze_name = storage.table_name("bronze", table.bronze)
    bronze = _bronze(spark, table.bronze, window).cache()
    rechecked = held.held_rows(spark, table.quarantine, bronze.schema, window, table.holds)
    # Held rows come from the quarantine this run rewrites, and the kept rows may depend on
    # the Silver table it writes (clickstream's earlier events): Spark re-reads a cached
    # frame whose table changed, so these are checkpointed, not cached, before any write.
    rechecked = rechecked.localCheckpoint() if rechecked is not None else None
    batch_rows = bronze if rechecked is None else bronze.unionByName(rechecked)
    lateness = Lateness(held.as_of(spark, bronze_name, window), grace_days)
    split = table.clean(spark, batch_rows, Batch(window, run_id, lateness))
    valid, quarantined = split.valid.localCheckpoint(), split.quarantined.localCheckpoint()
    in_window = storage.window_condition(BRONZE_PARTITION, window)
    valid_in_window = storage.window_condition(table.batch_day, window)
    # A dropped duplicate keeps its Bronze row in ``_bronze``: its day is that row's day.
    day_of_duplicate = f"_bronze.{BRONZE_PARTITION}"
    duplicates, duplicates_per_day = _split_by_day(
        split.duplicates, day_of_duplicate, storage.window_condition(day_of_duplicate, window)
    )
    try:
        bronze_per_day = _rows_per_day(bronze, BRONZE_PARTITION)
        total = sum(bronze_per_day.values())
        n_rechecked = rechecked.count() if rechecked is not None else 0
        schema = _schema_verdict(table, bronze, split, total)
        if not schema.passed:
            # A removed or retyped required field: write nothing; Bronze keeps every line.
            return SilverResult(name, total, 0, 0, 0, {}, None, [schema], written=False)
        rows = valid.drop(WARNINGS_COLUMN)
        if evolve_schema and split.new_fields is not None and RAW_LINE in rows.columns:
            found = [r.field for r in split.new_fields.select("field").distinct().collect()]
            rows = evolve(rows, found)
            storage.allow_new_columns(spark, name)
        if RAW_LINE in rows.columns:
            rows = rows.drop(RAW_LINE)
        out = table.to_table(rows, run_id)
        if table.holds:
            out = held.mark_released(out, table.batch_day, window)
        table.write(out, name, window)
        _, written_per_day = _split_by_day(out, table.batch_day, valid_in_window)
        held_days = (
            [r[0] for r in rechecked.select(BRONZE_PARTITION).distinct().collect()]
            if rechecked is not None
            else []
        )
        held.write_quarantine(quarantined, table.quarantine, window, table.holds, held_days)
        n_kept, kept_per_day = _split_by_day(valid, table.batch_day, valid_in_window)
        n_bad, bad_per_day = _split_by_day(quarantined, BRONZE_PARTITION, in_window)
        counts = {
            "bronze_rows": total,
            "held_rechecked": n_rechecked,
            "silver_rows": n_kept,
            "quarantined": n_bad,
            "duplicates_removed": duplicates,
        }
        released = n_kept - sum(kept_per_day.values())
        # Each rule is judged on the window's own rows; held rows of other days were judged
        # when they came in, and are counted here as re-checked and released.
        window_bad = quarantined.where(in_window)
        dropped = q.rule_stats(window_bad, "rules", "record_key", BRONZE_PARTITION)
        warned = valid.where(valid_in_window).withColumn("_no_key", F.lit(None).cast("string"))
        flagged = dropped | q.rule_stats(warned, WARNINGS_COLUMN, "_no_key", table.batch_day)
        batch = sum(kept_per_day.values()) + sum(bad_per_day.values())
        verdicts = [schema]
        verdicts += [q.judge_rule(r, flagged.get(r.name), batch) for r in table.quality.rows]
        verdicts += _table_verdicts(spark, table, window, valid, split, counts, bronze_per_day)
        awaiting = 0
        if table.holds:
            awaiting = (
                spark.table(table.quarantine)
                .where(F.exists("rules", lambda r: r.startswith("awaiting_")))
                .count()
            )
        snapshot_id, table_rows = storage.latest_snapshot(spark, name)
        return SilverResult(
            table=name,
            bronze_rows=total,
            rows=counts["silver_rows"],
            quarantined=counts["quarantined"],
            duplicates=counts["duplicates_removed"],
            rules={rule: stats["rows"] for rule, stats in dropped.items()},
            snapshot_id=snapshot_id,
            verdicts=verdicts,
            held_rechecked=n_rechecked,
            released=released,
            awaiting=awaiting,
            bronze_per_day=bronze_per_day,
            kept_per_day=kept_per_day,
            quarantined_per_day=bad_per_day,
            duplicates_per_day=duplicates_per_day,
            written_per_day=written_per_day,
            table_rows=table_rows,
        )
    finally:
        bronze.unpersist()  # the checkpoints go with their frames


def _merge(key: str, partition_column: str | None = None):
    return lambda df, name, window: storage.merge_latest(df, name, key, partition_column)


def _replace(column: str, keys: tuple[str, ...]):
    """Replace the window's days; rows of other days (released from hold) are added to their
    day unless the key is already there, so a rerun never adds them twice."""

    def write(df: DataFrame, name: str, window: DayWindow) -> None:
        inside = storage.window_condition(column, window)
        df = df.cache()
        try:
            storage.replace_window(df.where(inside), name, column, window)
            storage.insert_missing(df.where(~inside), name, keys)
        finally:
            df.unpersist()

    return write


def _earlier_clickstream(spark: SparkSession, window: DayWindow) -> DataFrame | None:
    name = storage.table_name("silver", "clickstream")
    if not spark.catalog.tableExists(name):
        return None
    lookback = DayWindow(window.start - timedelta(days=DEDUP_LOOKBACK_DAYS), window.start)
    return spark.table(name).where(storage.window_condition("ingest_date", lookback))


def _silver(spark: SparkSession, table: str) -> DataFrame:
    return spark.table(storage.table_name("silver", table))


TABLES = {
    "customers": SilverTable(
        "customers",
        "customers",
        CUSTOMERS_QUALITY,
        lambda spark, bronze, batch: clean_customers(bronze, batch.run_id),
        _merge("customer_id"),
        batch_day="_ingest_date",
    ),
    "products": SilverTable(
        "products",
        "products",
        PRODUCTS_QUALITY,
        lambda spark, bronze, batch: clean_products(bronze, batch.run_id),
        _merge("product_id"),
        batch_day="_ingest_date",
    ),
    "orders": SilverTable(
        "orders",
        "orders",
        ORDERS_QUALITY,
        lambda spark, bronze, batch: clean_orders(
            bronze,
            _silver(spark, "customers"),
            _silver(spark, "products"),
            batch.run_id,
            batch.lateness,
        ),
        _merge("order_id", "order_date"),
        batch_day="_ingest_date",
    ),
    "clickstream": SilverTable(
        "clickstream",
        "clickstream",
        CLICKSTREAM_QUALITY,
        lambda spark, bronze, batch: clean_clickstream(
            bronze,
            _earlier_clickstream(spark, batch.window),
            batch.run_id,
            _silver(spark, "products"),
            batch.lateness,
        ),
        _replace("ingest_date", ("event_id",)),
        batch_day="ingest_date",
        unique_scope="ingest_date",
    ),
    "inventory": SilverTable(
        "inventory",
        "inventory_events",
        INVENTORY_QUALITY,
        lambda spark, bronze, batch: clean_inventory_events(
            bronze, _silver(spark, "products"), batch.run_id, batch.lateness
        ),
        _replace("snapshot_date", ("snapshot_date", "product_id", "warehouse_id")),
        batch_day="snapshot_date",
        unique_scope="snapshot_date",
        to_table=lambda valid, run_id: daily_stock(valid, run_id),
    ),
}


def run(spark: SparkSession, settings: Settings, window: DayWindow, run_id: str):
    return [
        run_table(spark, table, window, run_id, grace_days=settings.reference_grace_days)
        for table in TABLES.values()
    ]


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.cli import run_job

    run_job("silver", run, argv)


if __name__ == "__main__":
    main()
