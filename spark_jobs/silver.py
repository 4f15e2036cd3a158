"""Silver: typed, deduplicated, validated. Failing rows go to quarantine with the rules broken.

    spark-submit spark_jobs/silver.py --date 2026-01-01

Per table and window: Bronze rows = Silver rows + quarantined rows + duplicates removed.
Each ``clean_*`` function is a pure transform (DataFrames in, a ``Split`` out); ``run_*`` reads
Bronze, writes Silver and its quarantine table, and returns the counts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spark_jobs import storage  # noqa: E402
from spark_jobs.quality import (  # noqa: E402
    RULES_COLUMN,
    Rule,
    Split,
    accepted_values,
    apply_rules,
    at_least,
    keep_first,
    not_null,
    parses,
    rule_counts,
)
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

CLICKSTREAM_JSON = (
    "event_id string, user_id long, session_id string, event_type string, page_url string, "
    "timestamp string, properties string, _corrupt string"
)
INVENTORY_JSON = (
    "topic string, partition int, offset long, key string, event_id string, product_id long, "
    "warehouse_id string, change long, stock_level long, reason string, event_ts string, "
    "_corrupt string"
)


@dataclass(frozen=True)
class SilverResult:
    table: str
    bronze_rows: int
    rows: int
    quarantined: int
    duplicates: int
    rules: dict[str, int]
    snapshot_id: int | None
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.bronze_rows == self.rows + self.quarantined + self.duplicates


# ------------------------------------------------------------------ shared pieces
def _F():
    from pyspark.sql import functions as F

    return F


def _latest_first() -> list[Column]:
    F = _F()
    return [F.col("updated_at").desc_nulls_last(), F.col("_ingested_at").desc()]


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


def _json_rules(parsed: str, field_rules: list[Rule]) -> list[Rule]:
    """A line that is not JSON, or has a field of the wrong type, breaks that one rule.

    Field rules apply to the lines that parsed cleanly: a retyped ``user_id`` is a schema
    problem, not also a missing ``user_id``.
    """
    F = _F()
    not_json = F.from_json(F.col("_bronze.raw_line"), "map<string,string>").isNull()
    mismatch = ~not_json & F.col(f"{parsed}._corrupt").isNotNull()
    clean = ~not_json & ~mismatch
    return [
        Rule("malformed_json", not_json, "the line is a JSON object"),
        Rule("schema_mismatch", mismatch, "every field has its expected type"),
        *[Rule(r.name, clean & r.fails, r.description) for r in field_rules],
    ]


# ------------------------------------------------------------------ customers
CUSTOMER_RULES = lambda: [  # noqa: E731 - built lazily: Column needs an active SparkContext
    not_null("customer_id"),
    not_null("email"),
    accepted_values("segment", SEGMENTS),
    accepted_values("region", REGIONS),
    parses("updated_at_raw", "updated_at"),
]


def clean_customers(bronze: DataFrame, run_id: str) -> Split:
    F = _F()
    typed = _bronze_record(bronze).select(
        "_bronze",
        "_ingested_at",
        F.col("customer_id").cast("long").alias("customer_id"),
        F.col("name").cast("string").alias("name"),
        F.col("email").cast("string").alias("email"),
        F.col("segment").cast("string").alias("segment"),
        F.col("region").cast("string").alias("region"),
        F.to_timestamp(F.col("created_at")).alias("created_at"),
        F.col("updated_at").cast("string").alias("updated_at_raw"),
        F.to_timestamp(F.col("updated_at")).alias("updated_at"),
    )
    latest, duplicates = keep_first(typed, ["customer_id"], _latest_first())
    valid, bad = apply_rules(latest, CUSTOMER_RULES())
    return Split(
        valid.select(
            "customer_id",
            "name",
            "email",
            "segment",
            "region",
            "created_at",
            "updated_at",
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("_ingest_date"),
            F.lit(run_id).alias("_run_id"),
        ),
        quarantine_rows(bad, F.col("customer_id"), run_id),
        duplicates,
    )


# ------------------------------------------------------------------ products
PRODUCT_RULES = lambda: [  # noqa: E731
    not_null("product_id"),
    not_null("category"),
    not_null("unit_price"),
    at_least("unit_price", 0),
    at_least("unit_cost", 0),
    parses("updated_at_raw", "updated_at"),
]


def clean_products(bronze: DataFrame, run_id: str) -> Split:
    F = _F()
    typed = _bronze_record(bronze).select(
        "_bronze",
        "_ingested_at",
        F.col("product_id").cast("long").alias("product_id"),
        F.col("name").cast("string").alias("name"),
        F.col("category").cast("string").alias("category"),
        F.col("unit_price").cast("decimal(12,2)").alias("unit_price"),
        F.col("unit_cost").cast("decimal(12,2)").alias("unit_cost"),
        F.col("updated_at").cast("string").alias("updated_at_raw"),
        F.to_timestamp(F.col("updated_at")).alias("updated_at"),
    )
    latest, duplicates = keep_first(typed, ["product_id"], _latest_first())
    valid, bad = apply_rules(latest, PRODUCT_RULES())
    return Split(
        valid.select(
            "product_id",
            "name",
            "category",
            "unit_price",
            "unit_cost",
            "updated_at",
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("_ingest_date"),
            F.lit(run_id).alias("_run_id"),
        ),
        quarantine_rows(bad, F.col("product_id"), run_id),
        duplicates,
    )


# ------------------------------------------------------------------ orders
def order_rules() -> list[Rule]:
    F = _F()
    return [
        not_null("order_id"),
        not_null("customer_id"),
        not_null("product_id"),
        not_null("amount"),
        at_least("quantity", 0, strict=True),
        at_least("amount", 0),
        accepted_values("status", ORDER_STATUSES),
        parses("order_ts_raw", "order_ts"),
        Rule(
            "customer_exists",
            F.col("customer_id").isNotNull() & F.col("_customer_found").isNull(),
            "customer_id references silver.customers",
        ),
        Rule(
            "product_exists",
            F.col("product_id").isNotNull() & F.col("_product_found").isNull(),
            "product_id references silver.products",
        ),
    ]


def clean_orders(
    bronze: DataFrame, customers: DataFrame, products: DataFrame, run_id: str
) -> Split:
    """Latest version per order, typed, and checked against customers and products."""
    F = _F()
    typed = _bronze_record(bronze).select(
        "_bronze",
        "_ingested_at",
        F.col("order_id").cast("long").alias("order_id"),
        F.col("customer_id").cast("long").alias("customer_id"),
        F.col("product_id").cast("long").alias("product_id"),
        F.col("quantity").cast("int").alias("quantity"),
        F.col("amount").cast("decimal(12,2)").alias("amount"),
        F.col("status").cast("string").alias("status"),
        F.col("order_ts").cast("string").alias("order_ts_raw"),
        F.to_timestamp(F.col("order_ts")).alias("order_ts"),
        F.to_timestamp(F.col("updated_at")).alias("updated_at"),
    )
    latest, duplicates = keep_first(typed, ["order_id"], _latest_first())
    known_customers = customers.select(
        F.col("customer_id").alias("_cid"), F.lit(True).alias("_customer_found")
    ).distinct()
    known_products = products.select(
        F.col("product_id").alias("_pid"), F.lit(True).alias("_product_found")
    ).distinct()
    checked = latest.join(known_customers, latest.customer_id == known_customers._cid, "left").join(
        known_products, latest.product_id == known_products._pid, "left"
    )
    valid, bad = apply_rules(checked, order_rules())
    return Split(
        valid.select(
            "order_id",
            "customer_id",
            "product_id",
            "quantity",
            "amount",
            "status",
            "order_ts",
            F.to_date("order_ts").alias("order_date"),
            "updated_at",
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("_ingest_date"),
            F.lit(run_id).alias("_run_id"),
        ),
        quarantine_rows(bad, F.col("order_id"), run_id),
        duplicates,
    )


# ------------------------------------------------------------------ clickstream
CLICKSTREAM_RULES = lambda: _json_rules(  # noqa: E731
    "j",
    [
        not_null("event_id"),
        not_null("user_id"),
        not_null("event_ts"),
        accepted_values("event_type", EVENT_TYPES),
    ],
)


def clean_clickstream(bronze: DataFrame, earlier_event_ids: DataFrame | None, run_id: str) -> Split:
    """Parse each raw line; one row per event_id, the first landed wins.

    ``earlier_event_ids`` are the ids Silver already holds from days before the window: an
    event redelivered on a later day is a duplicate, not a new event.
    """
    F = _F()
    parsed = _bronze_record(bronze).withColumn(
        "j",
        F.from_json(
            "raw_line",
            CLICKSTREAM_JSON,
            {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"},
        ),
    )
    typed = parsed.select(
        "_bronze",
        "j",
        F.col("j.event_id").alias("event_id"),
        F.col("j.user_id").alias("user_id"),
        F.col("j.session_id").alias("session_id"),
        F.col("j.event_type").alias("event_type"),
        F.col("j.page_url").alias("page_url"),
        F.to_timestamp("j.timestamp").alias("event_ts"),
        F.col("j.properties").alias("properties"),
    )
    first = [F.col(f"_bronze.{c}") for c in (BRONZE_PARTITION, "_source_file", "_line_number")]
    kept, duplicates = keep_first(typed, ["event_id"], first)
    if earlier_event_ids is not None:
        seen = earlier_event_ids.select(F.col("event_id").alias("_seen")).distinct()
        kept = kept.join(seen, kept.event_id == seen._seen, "left")
        duplicates = duplicates.unionByName(kept.where(F.col("_seen").isNotNull()).drop("_seen"))
        kept = kept.where(F.col("_seen").isNull()).drop("_seen")
    valid, bad = apply_rules(kept, CLICKSTREAM_RULES())
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
            F.get_json_object("properties", "$.product_id").cast("long").alias("product_id"),
            F.get_json_object("properties", "$.order_id").cast("long").alias("order_id"),
            "properties",
            F.col(f"_bronze.{BRONZE_PARTITION}").alias("ingest_date"),
            F.col("_bronze._source_file").alias("_source_file"),
            F.col("_bronze._line_number").alias("_line_number"),
            F.lit(run_id).alias("_run_id"),
        ),
        quarantine_rows(
            bad,
            F.coalesce(
                F.col("event_id"),
                F.concat_ws(":", "_bronze._source_file", "_bronze._line_number"),
            ),
            run_id,
        ),
        duplicates,
    )


# ------------------------------------------------------------------ inventory
def inventory_rules() -> list[Rule]:
    F = _F()
    return _json_rules(
        "j",
        [
            not_null("product_id"),
            not_null("warehouse_id"),
            not_null("stock_level"),
            not_null("event_ts"),
            at_least("stock_level", 0),
            Rule(
                "product_exists",
                F.col("product_id").isNotNull() & F.col("_product_found").isNull(),
                "product_id references silver.products",
            ),
        ],
    )


def clean_inventory_events(bronze: DataFrame, products: DataFrame, run_id: str) -> Split:
    """Parse Kafka-sink lines; a redelivered offset is a duplicate."""
    F = _F()
    parsed = _bronze_record(bronze).withColumn(
        "j",
        F.from_json(
            "raw_line",
            INVENTORY_JSON,
            {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"},
        ),
    )
    typed = parsed.select(
        "_bronze",
        "j",
        *[F.col(f"j.{c}").alias(c) for c in ("topic", "partition", "offset", "event_id")],
        *[F.col(f"j.{c}").alias(c) for c in ("product_id", "warehouse_id", "change")],
        *[F.col(f"j.{c}").alias(c) for c in ("stock_level", "reason")],
        F.to_timestamp("j.event_ts").alias("event_ts"),
    )
    first = [F.col(f"_bronze.{c}") for c in (BRONZE_PARTITION, "_source_file", "_line_number")]
    kept, duplicates = keep_first(typed, ["topic", "partition", "offset"], first)
    known = products.select(F.col("product_id").alias("_pid"), F.lit(True).alias("_product_found"))
    checked = kept.join(known.distinct(), kept.product_id == F.col("_pid"), "left")
    valid, bad = apply_rules(checked, inventory_rules())
    return Split(
        valid.withColumn("snapshot_date", F.col(f"_bronze.{BRONZE_PARTITION}")),
        quarantine_rows(
            bad,
            F.coalesce(
                F.concat_ws(":", "topic", "partition", "offset"),
                F.concat_ws(":", "_bronze._source_file", "_bronze._line_number"),
            ),
            run_id,
        ),
        duplicates,
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


# ------------------------------------------------------------------ I/O
def _bronze(spark: SparkSession, table: str, window: DayWindow) -> DataFrame:
    return spark.table(storage.table_name("bronze", table)).where(
        storage.window_condition(BRONZE_PARTITION, window)
    )


def _write(
    spark: SparkSession,
    table: str,
    bronze: DataFrame,
    split: Split,
    window: DayWindow,
    write_valid,
) -> SilverResult:
    """Write Silver rows and quarantine, then count what went where."""
    valid = split.valid.cache()
    quarantined = split.quarantined.cache()
    try:
        name = storage.table_name("silver", table)
        write_valid(valid, name)
        storage.replace_window(
            quarantined,
            storage.table_name("silver", f"{table}_quarantine"),
            BRONZE_PARTITION,
            window,
        )
        return SilverResult(
            table=name,
            bronze_rows=bronze.count(),
            rows=valid.count(),
            quarantined=quarantined.count(),
            duplicates=split.duplicates.count(),
            rules=rule_counts(quarantined),
            snapshot_id=storage.latest_snapshot_id(spark, name),
        )
    finally:
        valid.unpersist()
        quarantined.unpersist()


def run_customers(spark: SparkSession, window: DayWindow, run_id: str) -> SilverResult:
    bronze = _bronze(spark, "customers", window)
    split = clean_customers(bronze, run_id)
    return _write(
        spark,
        "customers",
        bronze,
        split,
        window,
        lambda df, name: storage.merge_latest(df, name, "customer_id"),
    )


def run_products(spark: SparkSession, window: DayWindow, run_id: str) -> SilverResult:
    bronze = _bronze(spark, "products", window)
    split = clean_products(bronze, run_id)
    return _write(
        spark,
        "products",
        bronze,
        split,
        window,
        lambda df, name: storage.merge_latest(df, name, "product_id"),
    )


def run_orders(spark: SparkSession, window: DayWindow, run_id: str) -> SilverResult:
    bronze = _bronze(spark, "orders", window)
    split = clean_orders(
        bronze,
        spark.table(storage.table_name("silver", "customers")),
        spark.table(storage.table_name("silver", "products")),
        run_id,
    )
    return _write(
        spark,
        "orders",
        bronze,
        split,
        window,
        lambda df, name: storage.merge_latest(df, name, "order_id", "order_date"),
    )


def run_clickstream(spark: SparkSession, window: DayWindow, run_id: str) -> SilverResult:
    bronze = _bronze(spark, "clickstream", window)
    name = storage.table_name("silver", "clickstream")
    earlier = None
    if spark.catalog.tableExists(name):
        lookback = DayWindow(window.start - timedelta(days=DEDUP_LOOKBACK_DAYS), window.start)
        earlier = spark.table(name).where(storage.window_condition("ingest_date", lookback))
    split = clean_clickstream(bronze, earlier, run_id)
    return _write(
        spark,
        "clickstream",
        bronze,
        split,
        window,
        lambda df, target: storage.replace_window(df, target, "ingest_date", window),
    )


def run_inventory(spark: SparkSession, window: DayWindow, run_id: str) -> SilverResult:
    bronze = _bronze(spark, "inventory_events", window)
    split = clean_inventory_events(
        bronze, spark.table(storage.table_name("silver", "products")), run_id
    )
    events = split.valid.cache()
    try:
        stock = Split(daily_stock(events, run_id), split.quarantined, split.duplicates)
        result = _write(
            spark,
            "inventory",
            bronze,
            stock,
            window,
            lambda df, target: storage.replace_window(df, target, "snapshot_date", window),
        )
        # Silver rows are daily aggregates here; the reconciliation counts events.
        valid_events = events.count()
        return SilverResult(
            **{**result.__dict__, "rows": valid_events, "extra": {"stock_rows": result.rows}}
        )
    finally:
        events.unpersist()


RUNNERS = {
    "customers": run_customers,
    "products": run_products,
    "orders": run_orders,
    "clickstream": run_clickstream,
    "inventory": run_inventory,
}


def run(spark: SparkSession, settings: Settings, window: DayWindow, run_id: str):
    del settings  # Silver reads only Bronze, through the catalog
    return [runner(spark, window, run_id) for runner in RUNNERS.values()]


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.cli import run_job

    run_job("silver", run, argv)


if __name__ == "__main__":
    main()
