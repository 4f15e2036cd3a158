"""gold.data_quality_daily's commits, through pyiceberg on a real SQLite catalog (no JVM)."""

from __future__ import annotations

from datetime import date

import pytest

from spark_jobs import quality_report
from spark_jobs.quality_report import CheckOutcome, Quarantined
from spark_jobs.window import DayWindow

# pyiceberg on the test home's SQLite catalog: no Spark, no servers.
pytestmark = pytest.mark.fast

A, B, C = date(2031, 1, 1), date(2031, 1, 2), date(2031, 1, 3)  # days no other test writes


def scored(day: date, passed: int, quarantined: int = 0):
    window = DayWindow.of_day(day)
    outcomes = [CheckOutcome(day.isoformat(), "silver.orders", "passed")] * passed
    held = {(day.isoformat(), "silver.orders"): Quarantined(quarantined, 0, {"x": quarantined})}
    return quality_report.build(window, outcomes, held), window


class RacedCatalog:
    """The catalog, with another run's report committed between this writer's read of the
    table and its commit, as when two runs score their days at once on a PostgreSQL catalog
    (the embedded one is locked per run). Only the timing is arranged here: both commits and
    the conflict between them are the catalog's own."""

    def __init__(self, catalog, other_report):
        self.catalog, self.other_report = catalog, other_report

    def __getattr__(self, name: str):
        return getattr(self.catalog, name)

    def load_table(self, identifier: str):
        table = self.catalog.load_table(identifier)
        if self.other_report is not None:
            rows, window = self.other_report
            self.other_report = None
            quality_report.write(self.catalog, rows, window)  # the other run wins the race
        return table


def report_rows(catalog) -> dict[tuple[date, str], tuple[int, int]]:
    table = catalog.load_table(f"gold.{quality_report.TABLE}").scan().to_arrow().to_pylist()
    return {
        (r["day"], r["table_name"]): (r["checks_passed"], r["rows_quarantined"])
        for r in table
        if r["day"] in (A, B, C)
    }


def test_two_runs_scoring_at_once_both_land_and_a_rerun_replaces_its_day(catalog, caplog):
    quality_report.write(catalog, *scored(A, passed=1))
    quality_report.write(RacedCatalog(catalog, scored(B, passed=2)), *scored(C, passed=3))
    # The commit did conflict, and pyiceberg made it again on the new snapshot.
    assert "Commit failed due to a concurrent update, retrying" in caplog.text
    expected = {(A, 1, 0), (B, 2, 0), (C, 3, 0)}
    rows = report_rows(catalog)
    assert {(day, *rows[(day, "silver.orders")]) for day in (A, B, C)} == expected
    assert {(day, *rows[(day, "all")]) for day in (A, B, C)} == expected
    # Rerunning a day replaces exactly that day, also when it loses a race.
    quality_report.write(RacedCatalog(catalog, scored(A, passed=4)), *scored(B, 5, 2))
    rows = report_rows(catalog)
    assert rows[(A, "silver.orders")] == (4, 0) and rows[(B, "silver.orders")] == (5, 2)
    assert rows[(C, "silver.orders")] == (3, 0) and len(rows) == 6
