"""Daily partitions, shared by every time-partitioned asset, and the window a run covers."""

from collections.abc import Mapping
from datetime import date, timedelta

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition, Failure

from spark_jobs.settings import Settings
from spark_jobs.window import DayWindow

# The run tags that say which days a run covers (Dagster's names; the one place they are
# typed): one partition, or the range of a single-run backfill.
PARTITION = "dagster/partition"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITION_TAGS = (PARTITION, RANGE_START, RANGE_END)


def days_of_run(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(first day, last day) a run's tags cover; None for an unpartitioned run."""
    if RANGE_START in tags:
        return tags[RANGE_START], tags.get(RANGE_END, tags[RANGE_START])
    day = tags.get(PARTITION)
    return (day, day) if day else None


# The first day the lakehouse can hold. The demo generates data from this day on.
START_DATE = "2026-01-01"
# Days, and the 06:00 schedule, are in this timezone (LAKEHOUSE_TIMEZONE). Partitions are part
# of the definitions, so this is read when the code location loads (change it, then reload).
TIMEZONE = Settings.from_env().timezone

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE)

# A backfill of any length is one run: each asset reads and writes the whole window with one
# Spark job (one JVM), instead of one run and one JVM per day.
single_run = BackfillPolicy.single_run()


def window_of(context: AssetExecutionContext) -> DayWindow:
    """The days this run materialises: one partition, or a range in a single-run backfill.

    A range that is reversed or reaches outside the partitions (before the first day, after
    yesterday) fails before anything is written, once: retrying cannot make it valid.
    """
    tags = context.run.tags
    if RANGE_START in tags:  # read before Dagster resolves the range, which may not exist
        start, end = tags[RANGE_START], tags.get(RANGE_END, "")
    else:
        start = end = context.partition_key
    problems = [
        f"{key!r} is not a daily partition (the first is {START_DATE}, the last is yesterday)"
        for key in dict.fromkeys((start, end))
        if not daily_partitions.has_partition_key(key)
    ]
    if not problems and end < start:
        problems.append(f"the range {start}...{end} ends before it starts")
    if problems:
        raise Failure("invalid partition range: " + "; ".join(problems), allow_retries=False)
    return DayWindow(date.fromisoformat(start), date.fromisoformat(end) + timedelta(days=1))
