"""What every Silver table is made of: its spec, the shape of a split batch, typed columns,
the quarantine table's rows, late references and the writers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

from pyspark.sql import functions as F

from spark_jobs import quality as q
from spark_jobs import storage
from spark_jobs.quality import RULES_COLUMN, WARNINGS_COLUMN
from spark_jobs.silver.checks import TableRules
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

BRONZE_PARTITION = "_partition_date"
BRONZE_DAY = f"_bronze.{BRONZE_PARTITION}"  # a typed row's Bronze day
RAW_LINE = "_raw_line"
# A duplicate event can land up to this many days after its original.
DEDUP_LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class Split:
    """What validation made of a batch.

    Every frame must be a projection or filter of a checkpoint taken inside the transform
    (``quality.rank_first``; ``quality.apply_rules`` where rows are judged after ranking),
    never of a lazy table read: the runner
    counts and judges them after it has written the tables a transform may read (a batch's
    earlier days, its quarantine), and they must still be the batch as judged.
    """

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
        if self.as_of is None:
            return F.lit(True)
        return F.datediff(F.lit(self.as_of), F.col(BRONZE_DAY)) > F.lit(self.grace_days)


@dataclass(frozen=True)
class Batch:
    """What a run hands a table's transform besides its Bronze rows."""

    window: DayWindow
    run_id: str
    lateness: Lateness = field(default_factory=Lateness)
    reads: Mapping[str, DataFrame] = field(default_factory=dict)
    """The whole of each Silver table the source's registry entry ``reads``, by name."""
    earlier: DataFrame | None = None
    """This table's own Silver rows of the days before the window (for deduplication)."""


class Writer(Protocol):
    """Writes a table's rows for a window. ``outside``: whether any of them may be of a day
    outside it (rows released from hold); False lets a writer skip what only such rows need."""

    def __call__(
        self, df: DataFrame, name: str, window: DayWindow, *, outside: bool = True
    ) -> None: ...


@dataclass(frozen=True)
class SilverTable:
    """How one Silver table is built from its Bronze rows: its rules, transform and writer.

    Each table's module declares one as ``TABLE``; which Bronze table it reads, what it is
    called and which other Silver tables it reads come from its entry in the registry.
    """

    quality: TableRules
    clean: Callable[[DataFrame, Batch], Split]
    write: Writer
    batch_day: str  # column of the kept rows holding their Bronze day
    unique_scope: str | None = None  # day column scoping the uniqueness check; None: whole table
    # What is written from the kept rows (inventory writes daily aggregates of its events);
    # None: the kept rows themselves.
    to_table: Callable[[DataFrame, str], DataFrame] | None = None
    earlier_days: int = 0
    """How many days before the window of its own table the transform reads (``earlier``)."""
    history: bool = False
    """A dimension whose writer also keeps every version in ``<table>_history``
    (``current_and_history``): its asset gets that table as a third output."""

    def __post_init__(self) -> None:
        # The runner tells the writer whether rows of other days are among the ones it
        # writes from the days of ``batch_day``: a writer that replaces days of another
        # column could be told "none" where it has some, and lose them.
        if isinstance(self.write, ReplaceDays) and self.write.column != self.batch_day:
            raise ValueError(
                f"replace({self.write.column!r}) writes days of another column than "
                f"batch_day {self.batch_day!r}"
            )


# ------------------------------------------------------------------ typed rows
def latest_first() -> list[Column]:
    return [F.col("updated_at").desc_nulls_last(), F.col("_ingested_at").desc()]


def first_landed() -> list[Column]:
    # Landing day, then landing time: a file that arrived later loses, whatever its name.
    order = (BRONZE_PARTITION, "_landed_at", "_source_file", "_line_number")
    return [F.col(f"_bronze.{c}") for c in order]


def bronze_record(df: DataFrame) -> DataFrame:
    """Keep the untouched Bronze row beside the typed columns, for quarantine."""
    return df.withColumn("_bronze", F.struct(*[F.col(c) for c in df.columns]))


def typed(bronze: DataFrame, types: dict[str, str], raw: tuple[str, ...] = ()) -> DataFrame:
    """Bronze columns cast to their Silver types, beside the untouched Bronze row.

    ``raw`` columns are also kept as text (``<name>_raw``), so a value that failed to convert
    can be told from a value that was missing.
    """

    def cast(name: str, kind: str) -> Column:
        converted = F.to_timestamp(F.col(name)) if kind == "timestamp" else F.col(name).cast(kind)
        return converted.alias(name)

    return bronze_record(bronze).select(
        "_bronze",
        "_ingested_at",
        *[F.col(name).cast("string").alias(f"{name}_raw") for name in raw],
        *[cast(name, kind) for name, kind in types.items()],
    )


def quarantine_rows(bad: DataFrame, key: Column, run_id: str) -> DataFrame:
    """The quarantine table's shape, the same for every Silver table."""
    return bad.select(
        F.col(BRONZE_DAY).alias(BRONZE_PARTITION),
        key.cast("string").alias("record_key"),
        F.col(RULES_COLUMN).alias("rules"),
        F.to_json("_bronze").alias("record"),
        F.lit(run_id).alias("_run_id"),
        F.current_timestamp().alias("_quarantined_at"),
    )


def _judged(
    kept: DataFrame,
    duplicates: DataFrame,
    key: str,
    quality: TableRules,
    columns: list,
    run_id: str,
) -> Split:
    """The rows kept after deduplication, validated, in a Split with their Bronze day."""
    valid, bad = q.apply_rules(kept, quality.rows)
    return Split(
        valid.select(
            *columns,
            F.col(BRONZE_DAY).alias("_ingest_date"),
            F.lit(run_id).alias("_run_id"),
            WARNINGS_COLUMN,
        ),
        quarantine_rows(bad, F.col(key), run_id),
        duplicates,
    )


def current_state(
    rows: DataFrame,
    key: str,
    quality: TableRules,
    columns: list,
    run_id: str,
    checked: Callable[[DataFrame], DataFrame] = lambda latest: latest,
) -> Split:
    """Latest version per key (by ``updated_at``), validated: a current-state table's batch."""
    latest, duplicates = q.keep_first(rows, [key], latest_first())
    return _judged(checked(latest), duplicates, key, quality, columns, run_id)


def versions_state(
    rows: DataFrame, key: str, quality: TableRules, columns: list, run_id: str
) -> Split:
    """Every distinct version (``key``, ``updated_at``) of the batch, each validated: a
    dimension's batch. Its writer (``current_and_history``) keeps them all in the history
    table and the latest valid one per key in the current-state table. Judging every version,
    not only the latest, makes a backfill of several days keep and quarantine exactly what
    the same days run one by one do."""
    distinct, duplicates = q.keep_first(rows, [key, "updated_at"], latest_first())
    return _judged(distinct, duplicates, key, quality, columns, run_id)


# ------------------------------------------------------------------ late references
def with_reference(
    df: DataFrame, dimension: DataFrame | None, key: str, found: str, column: str | None = None
) -> DataFrame:
    """``found`` is TRUE where ``column`` names a row of the whole ``dimension`` (not only
    the window's); no dimension given: every reference counts as found."""
    if dimension is None:
        return df.withColumn(found, F.lit(True))
    known = dimension.select(F.col(key).alias(f"_known_{key}"), F.lit(True).alias(found)).distinct()
    return df.join(known, df[column or key] == known[f"_known_{key}"], "left").drop(f"_known_{key}")


def with_products(df: DataFrame, products: DataFrame | None, lateness: Lateness) -> DataFrame:
    """The product reference every event table checks, and whether a miss is past grace."""
    checked = with_reference(df, products, "product_id", "_product_found")
    return checked.withColumn(q.PAST_GRACE, lateness.past_grace())


# ------------------------------------------------------------------ writers
def merge(key: str, partition_column: str | None = None) -> Writer:
    """Upsert the latest version of each key (a current-state table)."""

    def write(df: DataFrame, name: str, window: DayWindow, *, outside: bool = True) -> None:
        storage.merge_latest(df, name, key, partition_column)

    return write


def history_table(name: str) -> str:
    """Where a dimension keeps every valid version: lakehouse.silver.<table>_history."""
    return f"{name}_history"


def current_and_history(key: str) -> Writer:
    """A dimension: the window's days of ``<table>_history`` replaced by the batch's valid
    versions (a rerun puts back exactly those), and the latest of them per key upserted into
    the current-state table (never rolling a row back to an older version)."""

    def write(df: DataFrame, name: str, window: DayWindow, *, outside: bool = True) -> None:
        storage.replace_window(df, history_table(name), "_ingest_date", window)
        order = [F.col("updated_at").desc(), F.col("_ingest_date").desc()]
        latest, _ = q.keep_first(df, [key], order)
        storage.merge_latest(latest, name, key)

    return write


@dataclass(frozen=True)
class ReplaceDays:
    """Replace the window's days of ``column``; rows of other days (released from hold) are
    added to their day unless ``keys`` are already there, so a rerun never adds them twice."""

    column: str
    keys: tuple[str, ...]

    def __call__(
        self, df: DataFrame, name: str, window: DayWindow, *, outside: bool = True
    ) -> None:
        # Read twice, not cached: the runner's rows are computed from the judged checkpoint
        # (a projection, or inventory's daily aggregate), and caching them again cost a full
        # copy (4 s at 1 M events).
        inside = storage.window_condition(self.column, window)
        storage.replace_window(df.where(inside), name, self.column, window)
        if outside:  # else nothing to add, and no job to find that out
            storage.insert_missing(df.where(~inside), name, self.keys)


def replace(column: str, keys: tuple[str, ...]) -> Writer:
    """The writer of an event table: ``ReplaceDays``."""
    return ReplaceDays(column, keys)
