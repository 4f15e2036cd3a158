"""Bronze: the sources as they were, plus lineage. Nothing is parsed, fixed or dropped here.

spark-submit spark_jobs/cli.py bronze --date 2026-01-01
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from pyspark.sql import Observation
from pyspark.sql import functions as F

from spark_jobs import registry, storage
from spark_jobs.session import interruptible, releases_checkpoints
from spark_jobs.settings import LakehouseSetupError, Settings
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

PARTITION_COLUMN = "_partition_date"


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    rows_per_day: dict[str, int]
    snapshot_id: int | None
    detail: dict = field(default_factory=dict)
    table_rows: int | None = None  # every day's rows, after the write


def with_lineage(df: DataFrame, source: str, run_id: str) -> DataFrame:
    """Add where a row came from, when it was ingested and by which run."""
    return df.withColumns(
        {
            "_source": F.lit(source),
            "_ingested_at": F.current_timestamp(),
            "_run_id": F.lit(run_id),
        }
    )


def change_time() -> Column:
    """The row's ``updated_at`` as a timestamp; NULL when it is missing or not a timestamp."""
    return F.to_timestamp(F.col("updated_at").cast("string"))


def extracted_rows(df: DataFrame, window: DayWindow) -> DataFrame:
    """Source rows with the day they belong to: the day of their ``updated_at``.

    A row that no day's extraction can place (changed before the window, on a first load; or
    with a NULL or unparseable ``updated_at``) belongs to the window's first day: the day it
    was first seen. Silver quarantines the unplaceable ones by name.
    """
    changed = change_time()
    placed = changed.isNotNull() & (F.to_date(changed) >= F.lit(window.start))
    return df.withColumn(
        PARTITION_COLUMN, F.when(placed, F.to_date(changed)).otherwise(F.lit(window.start))
    )


def write_bronze(
    df: DataFrame,
    table: str,
    window: DayWindow,
    detail: dict | Callable[[int], dict] | None = None,
) -> WriteResult:
    """Replace the window's days of the Bronze table with ``df``, reading ``df`` once: its
    rows per day are those of the data files the commit added, from the table's metadata
    (not by reading the rows again: a cached copy of a day's million lines cost more than
    the write). ``detail`` may be a function of the rows written, called after the write:
    for figures observed by it, which it can check against them."""
    name = storage.table_name("bronze", table)
    spark = df.sparkSession
    storage.ensure_table(df, name, PARTITION_COLUMN)  # so that the write's parent is known
    parent = storage.current_snapshot(spark, name)
    storage.replace_window(df, name, PARTITION_COLUMN, window)
    commit = storage.commit_of(spark, name)
    per_day = None
    if commit is not None and commit.parent_id == parent:  # no other commit came between
        per_day = storage.rows_added_per_day(spark, name, PARTITION_COLUMN, commit.snapshot_id)
    if per_day is None:  # not exactly this write's rows: count them
        per_day = storage.rows_per_day(df, PARTITION_COLUMN)
    rows = sum(per_day.values())
    snapshot_id, table_rows = (commit.snapshot_id, commit.total_rows) if commit else (None, None)
    detail = detail(rows) if callable(detail) else detail
    return WriteResult(name, rows, per_day, snapshot_id, detail or {}, table_rows)


def _bronze_if_exists(spark: SparkSession, table: str) -> DataFrame | None:
    name = storage.table_name("bronze", table)
    return spark.table(name) if spark.catalog.tableExists(name) else None


def is_first_load(spark: SparkSession, table: str, window: DayWindow) -> bool:
    """No earlier day in Bronze: nothing before the window was ever extracted.

    Also true when the first day is run again, so rerunning it takes the same rows.
    """
    name = storage.table_name("bronze", table)
    return not storage.holds_rows(spark, name, PARTITION_COLUMN, before=window.start)


@releases_checkpoints
def extract_source_table(
    spark: SparkSession,
    settings: Settings,
    table: str,
    window: DayWindow,
    run_id: str,
    full_snapshot: bool = False,
) -> WriteResult:
    """Extract one operational table for the window into Bronze.

    Incremental by ``updated_at``, with three catch-ups so that no source row is invisible:
    - a first load (no earlier day in Bronze), or ``full_snapshot``, takes every row changed
      before the window;
    - otherwise the ``extract_lookback_days`` before the window are read again, and row
      versions Bronze does not hold (committed late, after that day's extraction) are taken;
    - rows with a NULL or unparseable ``updated_at`` are taken.
    A row taken by a catch-up belongs to the window's first day, the day it was first seen,
    unless another day of Bronze already holds that version.
    """
    dialect = storage.source_dialect(settings.source_url)
    if dialect == "sqlite" and not settings.source_db_path.is_file():
        # The SQLite driver would create an empty file there and fail on the missing table.
        raise LakehouseSetupError(
            f"the source database {settings.source_db_path} does not exist: run `make demo` "
            "(it generates one) or set LAKEHOUSE_SOURCE_URL"
        )
    first_load = full_snapshot or is_first_load(spark, table, window)
    since = None if first_load else window.start - timedelta(days=settings.extract_lookback_days)
    predicates = [
        *storage.day_predicates(window, dialect=dialect),
        storage.backlog_predicate(window.start, dialect=dialect, since=since),
        storage.unplaced_predicate(dialect=dialect),
    ]
    # Read the source once: the split below, the counts and the write see the same rows.
    source = storage.read_source_rows(spark, settings, table, predicates).cache()
    lined = None
    try:
        rows = source
        key = storage.SOURCE_KEYS[table]
        bronze = _bronze_if_exists(spark, table)
        changed = change_time()
        in_window = F.to_date(changed).between(F.lit(window.start), F.lit(window.days[-1]))
        if bronze is not None:
            # A caught-up version another day of Bronze already holds stays where it is.
            held = bronze.where(~storage.window_condition(PARTITION_COLUMN, window)).select(
                F.col(key).alias("_held_key"), change_time().alias("_held_at")
            )
            caught_up = rows.where(~F.coalesce(in_window, F.lit(False)))
            new = caught_up.join(
                held.distinct(),
                (caught_up[key] == F.col("_held_key")) & changed.eqNullSafe(F.col("_held_at")),
                "left_anti",
            )
            rows = rows.where(F.coalesce(in_window, F.lit(False))).unionByName(new)
        lined = with_lineage(extracted_rows(rows, window), f"db.{table}", run_id).cache()
        # A window Bronze holds nothing of yet (a day's first run) has no version to keep.
        rerun = storage.holds_rows(
            spark, storage.table_name("bronze", table), PARTITION_COLUMN, window.start, window.end
        )
        kept = (
            superseded_versions(bronze, lined, key, window)
            if bronze is not None and rerun
            else None
        )
        # Counted as the write reads them, not by actions of their own.
        stats = {
            "unplaced": F.count_if(changed.isNull()),
            "caught_up": F.count_if(F.to_date(changed) < F.lit(window.start)),
            "rows": F.count(F.lit(1)),
        }
        seen, kept_seen = Observation(), Observation()
        out = lined.observe(seen, *[e.alias(n) for n, e in stats.items()])
        if kept is not None:
            out = out.unionByName(
                kept.observe(kept_seen, F.count(F.lit(1)).alias("rows")), allowMissingColumns=True
            )

        def detail(written: int) -> dict:
            figures = storage.observed_metrics(seen) or {}
            kept_figures = (storage.observed_metrics(kept_seen) or {}) if kept is not None else {}
            observed = figures.get("rows", 0) + kept_figures.get("rows", 0)
            if set(figures) != set(stats) or observed != written:
                # Not handed over, a plan Spark dropped, or a stage counted twice: count.
                figures, kept_figures = counted_figures(lined, stats, kept)
            return {
                "extraction": "first load: full snapshot" if first_load else "incremental",
                "rows_changed_before_window": int(figures.get("caught_up") or 0),
                "rows_without_change_time": int(figures.get("unplaced") or 0),
                "versions_kept_from_earlier_extraction": int(kept_figures.get("rows") or 0),
            }

        return write_bronze(out, table, window, detail)
    finally:
        if lined is not None:
            lined.unpersist()
        source.unpersist()


def counted_figures(
    lined: DataFrame, stats: dict[str, Column], kept: DataFrame | None
) -> tuple[dict, dict]:
    """An extraction's figures by Spark actions of their own: when the write's observation
    of them cannot be used."""
    row = lined.agg(*[e.alias(n) for n, e in stats.items()]).first()
    return (row.asDict() if row is not None else {}), {
        "rows": kept.count() if kept is not None else 0
    }


def superseded_versions(
    bronze: DataFrame, extracted: DataFrame, key: str, window: DayWindow
) -> DataFrame:
    """The window's versions Bronze holds that the source no longer returns, as they are.

    The operational database keeps only each row's latest version: a day re-extracted after
    a row changed again no longer sees the version that day had. Bronze is the only place
    that version is kept, so the rerun keeps it (with its original lineage) unless the
    extraction took it again or another day of Bronze holds it. Rerunning a day therefore
    never loses a version, and rerunning it again adds nothing: counts do not drift.
    """
    held = bronze.where(storage.window_condition(PARTITION_COLUMN, window))
    elsewhere = bronze.where(~storage.window_condition(PARTITION_COLUMN, window))
    gone = held
    for seen in (extracted, elsewhere):
        versions = seen.select(F.col(key).alias("_k"), change_time().alias("_at")).distinct()
        same = (F.col(key) == versions["_k"]) & change_time().eqNullSafe(versions["_at"])
        gone = gone.join(versions, same, "left_anti")
    # Read before the write replaces the window's days of the very table it comes from.
    return gone.localCheckpoint()


@interruptible
def source_coverage(
    spark: SparkSession, settings: Settings, table: str, window: DayWindow
) -> tuple[int, int, list[str]]:
    """(source rows up to the window's end, of those not in Bronze, a sample of their keys).

    A row missing from Bronze means a day was never run (or a row slipped past extraction):
    Silver cannot know about it.
    """
    dialect = storage.source_dialect(settings.source_url)
    key = storage.SOURCE_KEYS[table]
    source = storage.read_source_rows(
        spark,
        settings,
        table,
        [
            storage.backlog_predicate(window.end, dialect=dialect),
            storage.unplaced_predicate(dialect=dialect),
        ],
    ).select(key)
    in_bronze = (
        spark.table(storage.table_name("bronze", table))
        .select(key)
        .distinct()
        .withColumn("_in_bronze", F.lit(True))
    )
    missing = F.col("_in_bronze").isNull()
    # One pass over the source: its rows, those missing from Bronze and a sample of them.
    stats = (
        source.join(in_bronze, key, "left")
        .agg(
            F.count(F.lit(1)),
            F.count_if(missing),
            F.slice(F.collect_list(F.when(missing, F.col(key).cast("string"))), 1, 5),
        )
        .first()
    )
    assert stats is not None, "a global aggregate always returns one row"
    return int(stats[0]), int(stats[1]), list(stats[2] or [])


@interruptible
def ingest_landing(
    spark: SparkSession, settings: Settings, source: str, table: str, window: DayWindow, run_id: str
) -> WriteResult:
    """Land every raw line of the window's files into Bronze, malformed ones included."""
    lines = storage.read_landing_lines(spark, settings, source, window)
    return write_bronze(with_lineage(lines, f"landing.{source}", run_id), table, window)


def run(
    spark: SparkSession,
    settings: Settings,
    window: DayWindow,
    run_id: str,
    sources: tuple[registry.Source, ...] = registry.SOURCES,
) -> list[WriteResult]:
    """Every source of the registry into its Bronze table, database tables first."""
    results = [
        extract_source_table(spark, settings, s.name, window, run_id)
        for s in registry.database_tables(sources)
    ]
    results += [
        ingest_landing(spark, settings, s.name, s.bronze, window, run_id)
        for s in registry.landing_feeds(sources)
    ]
    return results
