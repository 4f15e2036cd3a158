"""Table checks: each kind has typed parameters and judges a table's batch itself.

A table check looks at the whole batch or table (uniqueness, row-count band, freshness,
schema, new fields, reconciliation), where a row rule (``spark_jobs.quality``) looks at one row.
The runner builds one ``CheckInputs`` per table and run and asks every check of the table for
its verdict; a check with nothing to judge (no new-field report for a database table) returns
``None``. Every check becomes a Dagster asset check; this module knows nothing of Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, ClassVar

from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.quality import SAMPLE_SIZE, Action, Rule, Verdict
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.silver.common import Split

BRONZE_PARTITION = "_partition_date"


@dataclass(frozen=True)
class CheckInputs:
    """What one Silver run of one table hands its checks."""

    spark: SparkSession
    window: DayWindow
    table: str  # lakehouse.silver.<name>, as written by this run
    bronze_table: str
    batch_day: str  # column of the kept rows holding their Bronze day
    unique_scope: str | None  # day column scoping uniqueness; None: the whole table
    bronze_columns: list[str]
    split: Split
    valid: DataFrame | None = None  # the kept rows; None while the schema is judged
    counts: dict[str, int] = field(default_factory=dict)
    bronze_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def batch_rows(self) -> int:
        return sum(self.bronze_per_day.values())


@dataclass(frozen=True)
class TableCheck:
    """What every table check has: a name, an action and a sentence for the check list."""

    name: str
    action: Action
    description: str
    kind: ClassVar[str] = "table"

    @property
    def blocking(self) -> bool:
        return self.action == "fail"

    def evaluate(self, run: CheckInputs) -> Verdict | None:
        raise NotImplementedError

    def verdict(self, failing: int, sample=(), per_day=None, **detail) -> Verdict:
        """``per_day`` given: the verdict says what failed on each day; otherwise it is about
        the whole batch and holds for each of its days."""
        return Verdict(
            name=self.name,
            action=self.action,
            passed=failing == 0,
            severity="ERROR" if self.action == "fail" else "WARN",
            failing_rows=failing,
            description=self.description,
            sample=list(sample)[:SAMPLE_SIZE],
            per_day=per_day or {},
            detail={"kind": self.kind, **detail},
            scope="window" if per_day is None else "day",
        )


@dataclass(frozen=True)
class Unique(TableCheck):
    columns: tuple[str, ...] = ()
    kind: ClassVar[str] = "unique"

    def evaluate(self, run: CheckInputs) -> Verdict:
        written = run.spark.table(run.table)
        if run.unique_scope:
            written = written.where(storage.window_condition(run.unique_scope, run.window))
        return self.judge(written)

    def judge(self, df: DataFrame) -> Verdict:
        """Rows that share their key with another row (all of them, not one per key)."""
        cols = list(self.columns)
        dupes = df.groupBy(*cols).count().where(F.col("count") > 1)
        key = F.concat_ws("|", *[F.col(c).cast("string") for c in cols])
        stats = dupes.agg(
            F.coalesce(F.sum("count"), F.lit(0)).alias("rows"),
            F.slice(F.collect_list(key), 1, SAMPLE_SIZE).alias("sample"),
        ).first()
        assert stats is not None  # a global aggregate has one row
        return self.verdict(int(stats["rows"]), stats["sample"] or [])


@dataclass(frozen=True)
class RowCountBand(TableCheck):
    low: float = 0.5
    high: float = 2.0
    lookback_days: int = 7
    kind: ClassVar[str] = "row_count_band"

    def evaluate(self, run: CheckInputs) -> Verdict:
        # Bronze's earlier days, from the record counts of their files (no Spark job).
        start = run.window.start
        earlier = storage.rows_per_day_held(
            run.spark,
            run.bronze_table,
            BRONZE_PARTITION,
            start - timedelta(days=self.lookback_days),
            start,
        )
        return self.judge(run.bronze_per_day, {**earlier, **run.bronze_per_day})

    def judge(self, per_day: dict[str, int], history: dict[str, int]) -> Verdict:
        """Each day's rows against the mean of the previous days that have rows."""
        outside, ratios = {}, {}
        for day, rows in sorted(per_day.items()):
            start = date.fromisoformat(day) - timedelta(days=self.lookback_days)
            earlier = [n for d, n in history.items() if start.isoformat() <= d < day and n > 0]
            if not earlier:
                continue  # no history yet: nothing to compare with
            ratio = rows / (sum(earlier) / len(earlier))
            ratios[day] = round(ratio, 3)
            if not self.low <= ratio <= self.high:
                outside[day] = rows
        return self.verdict(
            sum(outside.values()), sorted(outside), outside, ratio_to_recent_mean=ratios
        )


@dataclass(frozen=True)
class Freshness(TableCheck):
    column: str = ""
    max_lag_hours: float = 24
    kind: ClassVar[str] = "freshness"

    def evaluate(self, run: CheckInputs) -> Verdict:
        column, day = F.col(self.column), F.col(run.batch_day)
        # A timestamp after the day's end says nothing about that day's freshness.
        on_time = F.when(column < F.to_timestamp(F.date_add(day, 1)), column)
        assert run.valid is not None, "freshness is judged on the kept rows, after the write"
        latest = (
            run.valid.where(storage.window_condition(run.batch_day, run.window))
            .groupBy(run.batch_day)
            .agg(F.max(on_time))
            .collect()
        )
        days = [d.isoformat() for d in run.window.days]
        per_day: dict[str, datetime | None] = {d: None for d in days if d in run.bronze_per_day}
        per_day.update({str(r[0]): r[1] for r in latest})
        return self.judge(per_day)

    def judge(self, latest_per_day: dict[str, datetime | None]) -> Verdict:
        """Days whose latest record is older than ``max_lag_hours`` before the day's end."""
        lag = timedelta(hours=self.max_lag_hours)
        stale = {}
        for day, latest in sorted(latest_per_day.items()):
            day_end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time())
            if latest is None or latest < day_end - lag:
                stale[day] = 1
        latest_text = {d: (t.isoformat() if t else None) for d, t in latest_per_day.items()}
        return self.verdict(len(stale), sorted(stale), stale, latest=latest_text)


@dataclass(frozen=True)
class Schema(TableCheck):
    required: tuple[tuple[str, str], ...] = ()  # (field, type)
    max_mistyped: float = 0.01
    kind: ClassVar[str] = "schema"

    def evaluate(self, run: CheckInputs) -> Verdict:
        """Judged before anything is written: a failure writes nothing."""
        if "raw_line" not in run.bronze_columns:  # a database table: its columns are its schema
            missing = [c for c, _ in self.required if c not in run.bronze_columns]
            return self.verdict(len(missing), missing, missing_columns=missing)
        broken, sample = _keys(run.split.schema_broken)
        mistyped, typed_sample = _keys(run.split.mistyped)
        # A few values of another type are row dirt (quarantined as field_types_valid); many
        # are the source changing a type, which must stop the table like a removed field.
        drifted = bool(run.batch_rows) and mistyped / run.batch_rows > self.max_mistyped
        return self.verdict(
            broken + (mistyped if drifted else 0),
            sample + (typed_sample if drifted else []),
            rows_missing_fields=broken,
            rows_mistyped=mistyped,
        )


@dataclass(frozen=True)
class NewFields(TableCheck):
    known: tuple[str, ...] = ()
    kind: ClassVar[str] = "new_fields"

    def evaluate(self, run: CheckInputs) -> Verdict | None:
        if run.split.new_fields is None:
            return None
        fields = run.split.new_fields.groupBy("field").count().collect()
        return self.verdict(
            sum(r["count"] for r in fields),
            sorted(r.field for r in fields),
            new_fields={r.field: r["count"] for r in fields},
        )


@dataclass(frozen=True)
class Reconciles(TableCheck):
    kind: ClassVar[str] = "reconciles"

    def evaluate(self, run: CheckInputs) -> Verdict:
        c = run.counts
        gap = c["bronze_rows"] + c["held_rechecked"] - c["silver_rows"] - c["quarantined"]
        return self.verdict(abs(gap - c["duplicates_removed"]), **c)


def _keys(df: DataFrame | None, limit: int = SAMPLE_SIZE) -> tuple[int, list[str]]:
    if df is None:
        return 0, []
    n = df.count()
    return n, [r.record_key for r in df.limit(limit).collect()] if n else []


@dataclass(frozen=True)
class TableRules:
    """Every rule and check of one table, in one declaration."""

    rows: tuple[Rule, ...] = ()
    checks: tuple[TableCheck, ...] = ()

    @property
    def all(self) -> list[Rule | TableCheck]:
        return [*self.rows, *self.checks]

    @property
    def schema(self) -> Schema:
        found = [c for c in self.checks if isinstance(c, Schema)]
        if len(found) != 1:
            raise ValueError("a Silver table declares exactly one schema check")
        return found[0]


# ------------------------------------------------------------------ declaring checks
def unique(columns: Sequence[str], action: Action = "fail") -> Unique:
    cols = tuple(columns)
    return Unique(f"unique_{'_'.join(cols)}", action, f"one row per {', '.join(cols)}", cols)


def row_count_band(low: float = 0.5, high: float = 2.0, lookback_days: int = 7) -> RowCountBand:
    return RowCountBand(
        "row_count_in_band",
        "warn",
        f"each day's rows within {low}x..{high}x the mean of the previous {lookback_days} days",
        low,
        high,
        lookback_days,
    )


def freshness(column: str, max_lag_hours: float, action: Action = "warn") -> Freshness:
    return Freshness(
        f"{column}_fresh",
        action,
        f"each day's latest {column} is within {max_lag_hours}h of the day's end",
        column,
        max_lag_hours,
    )


def schema(required: dict[str, str], action: Action = "fail", max_mistyped: float = 0.01) -> Schema:
    """Expected source columns (or JSON fields) and types. A removed field fails; a retyped
    value fails only above ``max_mistyped`` of the batch (below, it is row dirt, quarantined
    by its ``<field>_valid`` rule)."""
    return Schema(
        "schema",
        action,
        "required fields present with their types: "
        + ", ".join(f"{k} {v}" for k, v in required.items())
        + f"; at most {max_mistyped:.0%} of rows with a value of another type",
        tuple(required.items()),
        max_mistyped,
    )


def new_fields(known: Sequence[str]) -> NewFields:
    return NewFields(
        "no_new_fields",
        "warn",
        "incoming records carry no fields beyond the known ones (Bronze keeps them anyway)",
        tuple(known),
    )


def reconciles() -> Reconciles:
    return Reconciles(
        "bronze_reconciles",
        "fail",
        "Bronze rows = Silver rows + quarantined rows + duplicates removed",
    )
