"""gold.data_quality_daily: per day and table, how the checks went and what was quarantined.

The Dagster layer passes in each check's outcome per day (it reads them from its instance, the
system of record for checks, also for dbt tests); the quarantine counts come from the Silver
quarantine tables. ``build`` is pure; ``quarantined`` and ``write`` are the Spark work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Status = Literal["passed", "warned", "failed", "not_run"]
STATUSES: tuple[Status, ...] = ("passed", "warned", "failed", "not_run")
TABLE = "data_quality_daily"
ALL = "all"  # the row of each day that sums every table


@dataclass(frozen=True)
class CheckOutcome:
    """How one check of one table did on one day: its latest result covering that day."""

    day: str
    table: str  # silver.orders, gold.fct_orders, ...
    status: Status


@dataclass(frozen=True)
class Quarantined:
    """One table's quarantine on one day."""

    final: int = 0  # rows quarantined for good
    awaiting: int = 0  # rows held for a late reference
    by_rule: dict[str, int] = field(default_factory=dict)  # a row may break several rules


@dataclass(frozen=True)
class ReportRow:
    """One row of gold.data_quality_daily (its columns, in order)."""

    day: date
    table_name: str
    checks_passed: int
    checks_warned: int
    checks_failed: int
    checks_not_run: int
    rows_quarantined: int
    rows_awaiting: int
    quarantined_by_rule: dict[str, int]
    score: float | None


SCHEMA = (
    "day date, table_name string, checks_passed int, checks_warned int, checks_failed int, "
    "checks_not_run int, rows_quarantined long, rows_awaiting long, "
    "quarantined_by_rule map<string,long>, score double"
)


def score(counts: Counter) -> float | None:
    """100 for all passed; a warning counts half; checks that did not run do not count."""
    judged = counts["passed"] + counts["warned"] + counts["failed"]
    if not judged:
        return None
    return round(100 * (counts["passed"] + 0.5 * counts["warned"]) / judged, 1)


def _row(day: date, table: str, counts: Counter, held: Quarantined) -> ReportRow:
    return ReportRow(
        day,
        table,
        counts["passed"],
        counts["warned"],
        counts["failed"],
        counts["not_run"],
        held.final,
        held.awaiting,
        dict(held.by_rule),
        score(counts),
    )


def build(
    window: DayWindow,
    outcomes: Iterable[CheckOutcome],
    quarantine: dict[tuple[str, str], Quarantined],
) -> list[ReportRow]:
    """Per day of the window: one row per table with checks or quarantined rows, then the
    day's ``all`` row over every table."""
    counts: dict[tuple[str, str], Counter] = {}
    for outcome in outcomes:
        counts.setdefault((outcome.day, outcome.table), Counter())[outcome.status] += 1
    rows = []
    for day in window.days:
        iso = day.isoformat()
        total, final, awaiting, rules = Counter(), 0, 0, Counter()
        for table in sorted({t for d, t in (*counts, *quarantine) if d == iso}):
            checks, held = counts.get((iso, table), Counter()), quarantine.get((iso, table))
            held = held or Quarantined()
            total += checks
            final, awaiting = final + held.final, awaiting + held.awaiting
            rules.update(held.by_rule)
            rows.append(_row(day, table, checks, held))
        rows.append(_row(day, ALL, total, Quarantined(final, awaiting, dict(rules))))
    return rows


def summary_table(rows: list[ReportRow]) -> str:
    """The days' totals and every table that warned or failed, as Markdown."""
    lines = [
        "| day | table | passed | warned | failed | quarantined | awaiting | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.day} | {r.table_name} | {r.checks_passed} | {r.checks_warned} | "
        f"{r.checks_failed} | {r.rows_quarantined} | {r.rows_awaiting} | {r.score} |"
        for r in rows
        if r.table_name == ALL or r.checks_failed or r.checks_warned
    ]
    return "\n".join(lines)


def quarantined(
    spark: SparkSession, window: DayWindow, tables: Iterable[str]
) -> dict[tuple[str, str], Quarantined]:
    """(day, silver.<table>) -> what that table's quarantine holds for the day."""
    out: dict[tuple[str, str], Quarantined] = {}
    for name in tables:
        table = storage.table_name("silver", f"{name}_quarantine")
        if not spark.catalog.tableExists(table):
            continue
        rows = spark.table(table).where(storage.window_condition("_partition_date", window))
        waiting = F.forall("rules", lambda rule: rule.startswith("awaiting_"))
        per_day = rows.groupBy("_partition_date").agg(
            F.count_if(~waiting).alias("final"), F.count_if(waiting).alias("awaiting")
        )
        by_rule = (
            rows.select("_partition_date", F.explode("rules").alias("rule"))
            .groupBy("_partition_date", "rule")
            .count()
            .collect()
        )
        for day in per_day.collect():
            rules = {
                r["rule"]: r["count"]
                for r in by_rule
                if r["_partition_date"] == day["_partition_date"]
            }
            key = (day["_partition_date"].isoformat(), f"silver.{name}")
            out[key] = Quarantined(day["final"], day["awaiting"], rules)
    return out


def write(spark: SparkSession, rows: list[ReportRow], window: DayWindow) -> None:
    """Replace the window's days of gold.data_quality_daily with ``rows``."""
    frame = spark.createDataFrame([astuple(r) for r in rows], SCHEMA)
    storage.replace_window(frame, storage.table_name("gold", TABLE), "day", window)
