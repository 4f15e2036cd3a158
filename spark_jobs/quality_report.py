"""gold.data_quality_daily: per day and table, how the checks went and what was quarantined.

The Dagster layer passes in each check's outcome per day (it reads them from its instance, the
system of record for checks, also for dbt tests); the quarantine counts come from the Silver
quarantine tables. ``build`` is pure; ``quarantined`` and ``write`` read and write Iceberg
through pyiceberg and polars: a few hundred rows a day need no JVM (the report used to start
one, about 15 s).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

import polars as pl
import pyarrow as pa
from pyiceberg.exceptions import TableAlreadyExistsError

from spark_jobs.window import DayWindow, iceberg_filter

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

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


SCHEMA = pa.schema(
    [
        ("day", pa.date32()),
        ("table_name", pa.string()),
        ("checks_passed", pa.int32()),
        ("checks_warned", pa.int32()),
        ("checks_failed", pa.int32()),
        ("checks_not_run", pa.int32()),
        ("rows_quarantined", pa.int64()),
        ("rows_awaiting", pa.int64()),
        ("quarantined_by_rule", pa.map_(pa.string(), pa.int64())),
        ("score", pa.float64()),
    ]
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
    catalog: Catalog, window: DayWindow, tables: Iterable[str]
) -> dict[tuple[str, str], Quarantined]:
    """(day, silver.<table>) -> what that table's quarantine holds for the day."""
    out: dict[tuple[str, str], Quarantined] = {}
    for name in tables:
        identifier = f"silver.{name}_quarantine"
        if not catalog.table_exists(identifier):
            continue
        scan = catalog.load_table(identifier).scan(
            row_filter=iceberg_filter("_partition_date", window),
            selected_fields=("_partition_date", "rules"),
        )
        rows = pl.from_arrow(scan.to_arrow())
        assert isinstance(rows, pl.DataFrame)
        # Held only while every rule it breaks is a missing reference within its grace period.
        waiting = pl.col("rules").list.eval(pl.element().str.starts_with("awaiting_")).list.all()
        per_day = rows.group_by("_partition_date").agg(
            final=(~waiting).sum(), awaiting=waiting.sum()
        )
        by_rule = rows.explode("rules").drop_nulls("rules").group_by("_partition_date", "rules")
        rules: dict[date, dict[str, int]] = {}
        for day, rule, count in by_rule.len().iter_rows():
            rules.setdefault(day, {})[rule] = count
        for day, final, awaiting in per_day.iter_rows():
            key = (day.isoformat(), f"silver.{name}")
            out[key] = Quarantined(final, awaiting, rules.get(day, {}))
    return out


def write(catalog: Catalog, rows: list[ReportRow], window: DayWindow) -> None:
    """Replace the window's days of gold.data_quality_daily with ``rows``, in one commit (an
    overwrite by filter: a day that now has no rows is emptied, not left with stale ones).
    Two runs scoring their days at once (each main run's last step, on a shared catalog): the
    commit that finds the table changed is made again on the new snapshot by pyiceberg's
    retries (``commit.retry.*``), so both land (tests/test_quality_report.py)."""
    identifier = f"gold.{TABLE}"
    records = [
        {
            **dict(zip(SCHEMA.names, astuple(r), strict=True)),
            "quarantined_by_rule": list(r.quarantined_by_rule.items()),
        }
        for r in rows
    ]
    data = pa.Table.from_pylist(records, schema=SCHEMA)
    if not catalog.table_exists(identifier):
        catalog.create_namespace_if_not_exists("gold")
        try:  # partitioned by day from its first commit
            properties = {"format-version": "2"}
            with (
                catalog.create_table_transaction(identifier, SCHEMA, properties=properties) as new,
                new.update_spec() as spec,
            ):
                spec.add_identity("day")
        except TableAlreadyExistsError:
            pass  # another report created it meanwhile
    table = catalog.load_table(identifier)
    if table.current_snapshot() is None:
        table.append(data)  # nothing to replace yet
    else:
        table.overwrite(data, overwrite_filter=iceberg_filter("day", window))
