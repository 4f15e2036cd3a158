"""Rows held for a late-arriving reference: read back from quarantine, written back after a run.

A row whose customer or product is not in Silver yet waits in its table's quarantine, under
``awaiting_<reference>`` (or ``<reference>_exists`` once it is older than the grace period).
Every run of the table feeds the held rows of other days back in beside the window's Bronze
rows, as the Bronze rows they were: the quarantine keeps each row whole as JSON. Those whose
reference has arrived go to Silver; the others go back to the quarantine, to the day they came
from. So a customer created a minute before midnight and extracted the next day costs its
first order a day's wait, not the order.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from spark_jobs.silver.checks import TableRules

DAY = "_partition_date"
RELEASED_ON = "_released_on"  # the last day of the run that released a held row; else NULL


def reference_rules(quality: TableRules) -> list[str]:
    """Names of the rules that hold a row for a reference rather than reject it."""
    return [r.name for r in quality.rows if r.kind in ("awaiting", "references")]


def only_held_for(rules: Collection[str]) -> Column:
    """True for quarantine rows whose every broken rule is a missing reference."""
    names = list(rules)
    return F.forall(F.col("rules"), lambda rule: rule.isin(names))


def held_rows(
    spark: SparkSession,
    quarantine: str,
    bronze_schema: StructType,
    window: DayWindow,
    rules: Collection[str],
) -> DataFrame | None:
    """The held rows of days outside the window, as the Bronze rows they were."""
    if not rules or not spark.catalog.tableExists(quarantine):
        return None
    held = spark.table(quarantine).where(
        ~storage.window_condition(DAY, window) & only_held_for(rules)
    )
    return held.select(F.from_json("record", bronze_schema).alias("_row")).select("_row.*")


def as_of(spark: SparkSession, bronze: str, window: DayWindow) -> date:
    """The newest day the lakehouse holds for a table: what a held row's age is measured to."""
    last = window.days[-1]
    if not storage.holds_rows(spark, bronze, DAY, after=window.end):
        return last  # nothing after the window (a day's run): told from the files, no job
    row = spark.table(bronze).agg(F.max(DAY)).first()
    assert row is not None, "a global aggregate always returns one row"
    newest = row[0]
    return max(newest, last) if newest else last


def mark_released(df: DataFrame, day_column: str, window: DayWindow) -> DataFrame:
    """Rows of days outside the window were held and are released by this run: say so, so
    the Gold models rebuild the days they belong to (dbt reads ``_released_on`` as a change)."""
    released = ~storage.window_condition(day_column, window)
    return df.withColumn(
        RELEASED_ON, F.when(released, F.lit(window.days[-1])).otherwise(F.lit(None).cast("date"))
    )


def write_quarantine(
    rows: DataFrame, name: str, window: DayWindow, rules: Collection[str], held_days: list[date]
) -> None:
    """Replace the window's quarantine days with ``rows``, and on each day a held row came
    from, replace its held rows with what is still held; all in one atomic commit."""
    outside = sorted(set(held_days) - set(window.days))
    if not outside:
        storage.replace_window(rows, name, DAY, window)
        return
    spark = rows.sparkSession
    # The other rows of those days (dirt of other rules) stay as they are.
    kept = spark.table(name).where(F.col(DAY).isin(outside) & ~only_held_for(rules))
    combined = storage.conform(rows, name).unionByName(kept).cache()
    try:
        combined.count()  # read the table before the commit that replaces its days
        days = [*window.days, *outside]
        combined.writeTo(name).overwrite(F.col(DAY).isin(days))
    finally:
        combined.unpersist()
