"""Daily partitions, shared by every time-partitioned asset, and the window a run covers."""

import os

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

from spark_jobs.window import DayWindow

# The first day the lakehouse can hold. The demo generates data from this day on.
START_DATE = "2026-01-01"
# Days, and the 06:00 schedule, are in this timezone. Partitions are part of the definitions,
# so this is read when the code location loads (change it, then reload).
TIMEZONE = os.environ.get("LAKEHOUSE_TIMEZONE", "UTC")

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE)

# A backfill of any length is one run: each asset reads and writes the whole window with one
# Spark job (one JVM), instead of one run and one JVM per day.
single_run = BackfillPolicy.single_run()


def window_of(context: AssetExecutionContext) -> DayWindow:
    """The days this run materialises: one partition, or a range in a single-run backfill."""
    window = context.partition_time_window
    return DayWindow.from_datetimes(window.start, window.end)
