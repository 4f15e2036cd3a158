"""Running one Silver table for a window: read Bronze (and held rows), clean, judge, write.

Per table and window: Bronze rows = Silver rows + quarantined rows + duplicates removed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs import held, storage
from spark_jobs import quality as q
from spark_jobs.quality import WARNINGS_COLUMN, Verdict
from spark_jobs.registry import SOURCES, Source, in_dependency_order
from spark_jobs.session import compiled_from, releases_checkpoints
from spark_jobs.settings import Settings
from spark_jobs.silver.checks import CheckInputs, TableRules
from spark_jobs.silver.common import (
    BRONZE_DAY,
    BRONZE_PARTITION,
    RAW_LINE,
    Batch,
    Lateness,
    history_table,
)
from spark_jobs.silver.common import SilverTable as Spec
from spark_jobs.silver.json_lines import evolve
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession


@dataclass(frozen=True)
class SilverTable:
    """A registry entry with the spec its Silver module declares: all a run needs."""

    source: Source
    spec: Spec

    @property
    def name(self) -> str:
        return self.source.silver

    @property
    def bronze(self) -> str:
        return self.source.bronze

    @property
    def reads(self) -> tuple[str, ...]:
        return self.source.reads

    @property
    def quality(self) -> TableRules:
        return self.spec.quality

    @property
    def quarantine(self) -> str:
        return storage.table_name("silver", f"{self.name}_quarantine")

    @property
    def history(self) -> str | None:
        """The table of every valid version, for a dimension that keeps one."""
        name = storage.table_name("silver", self.name)
        return history_table(name) if self.spec.history else None

    @property
    def holds(self) -> list[str]:
        """The rules that hold rows for a late reference; empty: the table holds none."""
        return held.reference_rules(self.quality)


def tables(sources: tuple[Source, ...] = SOURCES) -> dict[str, SilverTable]:
    """Each source's Silver table, by name, in an order where reads come first."""
    out = {}
    for source in in_dependency_order(sources):
        spec = getattr(importlib.import_module(source.silver_module), "TABLE", None)
        if not isinstance(spec, Spec):
            raise ValueError(f"{source.silver_module} declares no Silver TABLE")
        out[source.silver] = SilverTable(source, spec)
    return out


TABLES = tables()


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


def _tally(
    parts: dict[str, tuple[DataFrame, str, Column | None]], flagged: DataFrame
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each part's rows per day of its ``column``: of the days where ``inside`` holds, the
    rest under None (every day without ``inside``); and the rule statistics of ``flagged``
    (``q.flagged_rules``' rows). One Spark job over the union of the parts and the flagged
    rows, where a count each was two jobs (a few hundred ms each, even for tiny batches)."""
    none = F.lit(None).cast("string")
    frames = []
    for kind, (df, column, inside) in parts.items():
        day = F.col(column).cast("string")
        day = day if inside is None else F.when(inside, day)
        frames.append(df.select(F.lit(kind).alias("kind"), none.alias("rule"), day.alias("day")))
    counts = reduce(DataFrame.union, frames).groupBy("kind", "rule", "day").count()
    no_keys = F.array().cast("array<string>")
    counts = counts.select("kind", "rule", "day", F.col("count").alias("n"), no_keys.alias("keys"))
    rules = q.per_rule_and_day(flagged).select(none.alias("kind"), "rule", "day", "n", "keys")
    tally: dict[str, dict] = {kind: {} for kind in parts}
    per_rule = []
    for row in counts.unionByName(rules).collect():
        if row["kind"] is None:
            per_rule.append(row)
        else:
            tally[row["kind"]][row["day"]] = row["n"]
    return tally, q.rule_stats_from(per_rule)


def _in_days(per_day: dict) -> dict[str, int]:
    return dict(sorted((d, n) for d, n in per_day.items() if d is not None))


def _earlier(table: SilverTable, window: DayWindow) -> DayWindow:
    """The days before the window the table's transform compares with (``earlier_days``)."""
    return DayWindow(window.start - timedelta(days=table.spec.earlier_days), window.start)


def _batch(spark: SparkSession, table: SilverTable, window: DayWindow, run_id: str, lateness):
    """What the table's transform gets: the Silver tables it reads, and its own earlier days."""
    reads = {name: spark.table(storage.table_name("silver", name)) for name in table.reads}
    name, earlier = storage.table_name("silver", table.name), None
    if table.spec.earlier_days and spark.catalog.tableExists(name):
        before = _earlier(table, window)
        earlier = spark.table(name).where(storage.window_condition(table.spec.batch_day, before))
    return Batch(window, run_id, lateness, reads, earlier)


@releases_checkpoints
def run_table(
    spark: SparkSession,
    table: SilverTable,
    window: DayWindow,
    run_id: str,
    evolve_schema: bool = False,
    grace_days: int = 3,
    codegen_min_rows: int = 0,
) -> SilverResult:
    """Validate the window's Bronze rows and, unless the schema check fails, write Silver.

    Rows of earlier days held for a late reference are evaluated again with them. With
    ``evolve_schema``, fields that are new in the incoming JSON become Silver columns;
    otherwise they are only reported (Bronze keeps them in the raw line either way). A table
    that reads fewer rows than ``codegen_min_rows`` runs on Spark's interpreted expressions
    (``session.compiled_from``; 0: always compiled).
    """
    rows = rows_read(spark, table, window)
    with compiled_from(spark, rows, codegen_min_rows):
        return _run_table(spark, table, window, run_id, evolve_schema, grace_days)


def rows_read(spark: SparkSession, table: SilverTable, window: DayWindow) -> int:
    """The rows a table's run reads, from the tables' metadata (no Spark job): the window's
    Bronze rows, its own earlier days the transform compares with, and the Silver tables it
    reads whole."""
    bronze_name = storage.table_name("bronze", table.bronze)
    rows = storage.rows_in_window(spark, bronze_name, BRONZE_PARTITION, window)
    if table.spec.earlier_days:
        own = storage.table_name("silver", table.name)
        rows += storage.rows_in_window(spark, own, table.spec.batch_day, _earlier(table, window))
    return rows + sum(
        storage.total_rows(spark, storage.table_name("silver", r)) for r in table.reads
    )


def _run_table(
    spark: SparkSession,
    table: SilverTable,
    window: DayWindow,
    run_id: str,
    evolve_schema: bool,
    grace_days: int,
) -> SilverResult:
    spec = table.spec
    name = storage.table_name("silver", table.name)
    bronze_name = storage.table_name("bronze", table.bronze)
    # Read where needed, not cached: the transform ranks its rows into a checkpoint at once
    # (``quality.rank_first``), and caching them first cost a copy (4 s at 1 M events). Pinned
    # to one snapshot, so the per-day counts below read the same rows the transform judged.
    bronze = storage.as_of_now(spark, bronze_name)
    bronze = bronze.where(storage.window_condition(BRONZE_PARTITION, window))
    rechecked = held.held_rows(spark, table.quarantine, bronze.schema, window, table.holds)
    # Held rows come from the quarantine this run rewrites, and the kept rows may depend on
    # the Silver table it writes (clickstream's earlier events): these are checkpointed before
    # any write, as the transform's ranked and judged rows are (see ``Split``), so no frame of
    # the batch re-reads a table after this run changed it.
    rechecked = rechecked.localCheckpoint() if rechecked is not None else None
    batch_rows = bronze if rechecked is None else bronze.unionByName(rechecked)
    lateness = Lateness(held.as_of(spark, bronze_name, window), grace_days)
    split = spec.clean(batch_rows, _batch(spark, table, window, run_id, lateness))
    valid, quarantined = split.valid, split.quarantined  # projections of a checkpoint
    in_window = storage.window_condition(BRONZE_PARTITION, window)
    valid_in_window = storage.window_condition(spec.batch_day, window)
    parts = {
        "bronze": (bronze, BRONZE_PARTITION, None),
        # A dropped duplicate keeps its Bronze row in ``_bronze``: its day is that row's day.
        "duplicates": (split.duplicates, BRONZE_DAY, storage.window_condition(BRONZE_DAY, window)),
        "kept": (valid, spec.batch_day, valid_in_window),
        "quarantined": (quarantined, BRONZE_PARTITION, in_window),
    }
    if rechecked is not None:
        parts["rechecked"] = (rechecked, BRONZE_PARTITION, None)
    if spec.to_table is not None:
        # The rows handed to the write below, per day, counted now in the same job: they come
        # from the checkpointed kept rows alone, so counted before the write they are the same
        # (a second job after it was a few hundred ms a table, even for tiny batches).
        parts["written"] = (spec.to_table(valid, run_id), spec.batch_day, valid_in_window)
    # Each rule is judged on the window's own rows; held rows of other days were judged
    # when they came in, and are counted here as re-checked and released.
    window_bad = quarantined.where(in_window)
    warned = valid.where(valid_in_window).withColumn("_no_key", F.lit(None).cast("string"))
    tally, flagged = _tally(
        parts,
        q.flagged_rules(window_bad, "rules", "record_key", BRONZE_PARTITION).union(
            q.flagged_rules(warned, WARNINGS_COLUMN, "_no_key", spec.batch_day)
        ),
    )
    bronze_per_day = _in_days(tally["bronze"])
    total = sum(bronze_per_day.values())
    held_per_day = _in_days(tally.get("rechecked", {}))
    n_rechecked = sum(held_per_day.values())
    inputs = CheckInputs(
        spark,
        window,
        name,
        bronze_name,
        spec.batch_day,
        spec.unique_scope,
        bronze.columns,
        split,
        bronze_per_day=bronze_per_day,
    )
    schema = table.quality.schema.evaluate(inputs)
    if not schema.passed:
        # A removed or retyped required field: write nothing; Bronze keeps every line.
        return SilverResult(name, total, 0, 0, 0, {}, None, [schema], written=False)
    rows = valid.drop(WARNINGS_COLUMN)
    if evolve_schema and split.new_fields is not None and RAW_LINE in rows.columns:
        found = [r.field for r in split.new_fields.select("field").distinct().collect()]
        rows = evolve(rows, found, RAW_LINE)
        storage.allow_new_columns(spark, name)
    if RAW_LINE in rows.columns:
        rows = rows.drop(RAW_LINE)
    out = spec.to_table(rows, run_id) if spec.to_table is not None else rows
    if table.holds:
        out = held.mark_released(out, spec.batch_day, window)
    written = tally["written" if "written" in tally else "kept"]
    # The tally counted the rows of days outside the window (or of no day) under None.
    spec.write(out, name, window, outside=bool(written.get(None)))
    held_days = [date.fromisoformat(d) for d in held_per_day]
    held.write_quarantine(quarantined, table.quarantine, window, table.holds, held_days)
    kept_per_day, bad_per_day = _in_days(tally["kept"]), _in_days(tally["quarantined"])
    written_per_day = _in_days(written)
    counts = {
        "bronze_rows": total,
        "held_rechecked": n_rechecked,
        "silver_rows": sum(tally["kept"].values()),
        "quarantined": sum(tally["quarantined"].values()),
        "duplicates_removed": sum(tally["duplicates"].values()),
    }
    n_kept = counts["silver_rows"]
    released = n_kept - sum(kept_per_day.values())
    warn_rules = {r.name for r in table.quality.rows if r.action == "warn"}
    dropped = {rule: stats for rule, stats in flagged.items() if rule not in warn_rules}
    batch = sum(kept_per_day.values()) + sum(bad_per_day.values())
    verdicts = [schema]
    verdicts += [q.judge_rule(r, flagged.get(r.name), batch) for r in table.quality.rows]
    after_write = replace(inputs, valid=valid, counts=counts)
    for check in table.quality.checks:
        if check is not table.quality.schema:
            verdict = check.evaluate(after_write)
            verdicts += [verdict] if verdict is not None else []
    awaiting = 0
    if table.holds:
        awaiting = (
            spark.table(table.quarantine)
            .where(F.exists("rules", lambda r: r.startswith("awaiting_")))
            .count()
        )
    commit = storage.commit_of(spark, name)
    return SilverResult(
        table=name,
        bronze_rows=total,
        rows=counts["silver_rows"],
        quarantined=counts["quarantined"],
        duplicates=counts["duplicates_removed"],
        rules={rule: stats["rows"] for rule, stats in dropped.items()},
        snapshot_id=commit.snapshot_id if commit else None,
        verdicts=verdicts,
        held_rechecked=n_rechecked,
        released=released,
        awaiting=awaiting,
        bronze_per_day=bronze_per_day,
        kept_per_day=kept_per_day,
        quarantined_per_day=bad_per_day,
        duplicates_per_day=_in_days(tally["duplicates"]),
        written_per_day=written_per_day,
        table_rows=commit.total_rows if commit else None,
    )


def run(
    spark: SparkSession,
    settings: Settings,
    window: DayWindow,
    run_id: str,
    sources: tuple[Source, ...] = SOURCES,
) -> list[SilverResult]:
    """The Silver tables of ``sources`` (every one by default), in dependency order."""
    return [
        run_table(
            spark,
            table,
            window,
            run_id,
            grace_days=settings.reference_grace_days,
            codegen_min_rows=settings.codegen_min_rows,
        )
        for table in TABLES.values()
        if table.source in sources
    ]
