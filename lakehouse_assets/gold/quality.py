"""gold.data_quality_daily: per day and table, how the checks went and what was quarantined.

It reads check results from the Dagster instance (the system of record for checks, also for
dbt tests) and hands them to ``spark_jobs.quality_report``, which adds the Silver quarantine
counts and writes the table. The main job runs it after every step that builds a table: it
depends on every table whose checks it reads, so those checks have run. A run that stops
before it (a blocking check held Gold back) is followed by the ``quality_report`` job on its
own (``automation.sensors``): a bad day is exactly the day whose score someone wants to see.
A report that fails fails its run, as any step does (the data is written by then; the alert
names the step), and the failure sensor then scores the days in a run of their own.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from lakehouse_assets.annotations import OWNERS, layer
from lakehouse_assets.gold.assets import gold_marts
from lakehouse_assets.partitions import daily_partitions, days_of_run, single_run, window_of
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.resources.catalog import open_catalog
from lakehouse_assets.retries import retried_on_error
from lakehouse_assets.silver import silver_assets
from spark_jobs import quality_report, silver
from spark_jobs.quality_report import CheckOutcome, Status
from spark_jobs.window import DayWindow

HISTORY = 200  # check executions read per query, newest first
# A catalog that is briefly unreachable, not a bug: tried again before the run fails. Raised
# by the step (``retried_on_error``), not a retry policy, which would retry a cancel too.
RETRIES = RetryPolicy(max_retries=2, delay=5)


class _RunDays:
    """Which days a run covered: its partition, or its single-run backfill range."""

    def __init__(self, instance: DagsterInstance):
        self.instance, self.cache = instance, {}

    def covers(self, run_id: str, day: str) -> bool:
        if run_id not in self.cache:
            run = self.instance.get_run_by_id(run_id)
            self.cache[run_id] = days_of_run(run.tags) if run else None
        span = self.cache[run_id]
        return span is not None and span[0] <= day <= span[1]


def check_outcomes(
    instance: DagsterInstance, keys: list[AssetCheckKey], window: DayWindow
) -> Iterator[CheckOutcome]:
    """Each check's outcome on each day: its newest result that covers the day. The history
    is read a page at a time until every day is decided: a single-run backfill of a year
    records one result per day and check, more than one page."""
    runs = _RunDays(instance)
    days = [d.isoformat() for d in window.days]
    in_window = set(days)
    for key in keys:
        table, decided = ".".join(key.asset_key.path), {}
        for record in _history(instance, key):  # newest first: the first covering a day decides
            if record.partition is not None:
                covered = [record.partition] if record.partition in in_window else []
            else:
                covered = [d for d in days if runs.covers(record.run_id, d)]
            for day in covered:
                if day not in decided:
                    event = record.event.get_dagster_event() if record.event else None
                    decided[day] = _status(event.event_specific_data if event else None)
            if len(decided) == len(days):
                break
        yield from (CheckOutcome(day, table, decided[day]) for day in days if day in decided)


def _history(instance: DagsterInstance, key: AssetCheckKey) -> Iterator:
    """The check's executions, newest first, read ``HISTORY`` at a time."""
    cursor = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=HISTORY, cursor=cursor
        )
        yield from page
        if len(page) < HISTORY:
            return
        cursor = page[-1].id


def _status(data) -> Status:
    if not isinstance(data, AssetCheckEvaluation):
        return "not_run"
    if data.passed:
        return "passed"
    return "failed" if data.severity == AssetCheckSeverity.ERROR else "warned"


@asset(
    key=["gold", "data_quality_daily"],
    group_name="gold",
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    # After every step whose checks it reads: Silver's tables and dbt's (its tests run in the
    # step that builds the marts).
    deps=[
        *[AssetKey(["silver", f"{name}_quarantine"]) for name in silver.TABLES],
        *gold_marts.keys,
    ],
    kinds={"polars", "iceberg"},
    owners=OWNERS,
    tags=layer("gold"),
)
def data_quality_daily(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
    """Per day and table: checks passed, warned and failed, rows quarantined by rule, a score.

    Read and written through pyiceberg: no JVM. The Spark resource is here for its settings and
    its lock on the embedded catalog, never for a session.
    """
    window = window_of(context)
    keys = sorted(
        {key for assets in (*silver_assets, gold_marts) for key in assets.check_keys},
        key=str,
    )
    with retried_on_error(context, RETRIES):
        outcomes = list(check_outcomes(context.instance, keys, window))
        catalog = open_catalog(spark.settings())  # pyiceberg: the report starts no JVM
        held = quality_report.quarantined(catalog, window, silver.TABLES)
        rows = quality_report.build(window, outcomes, held)
        quality_report.write(catalog, rows, window)
        overall = {r.day.isoformat(): r.score for r in rows if r.table_name == quality_report.ALL}
        for day, day_score in overall.items():  # each day's plot point: its score and rows
            rows_of_day = sum(1 for r in rows if r.day.isoformat() == day)
            per_day: dict = {"dagster/row_count": rows_of_day}
            if day_score is not None:
                per_day["score"] = day_score
            context.add_asset_metadata(per_day, partition_key=day)
        known = [s for s in overall.values() if s is not None]
        return MaterializeResult(
            metadata={
                "window_score": round(sum(known) / len(known), 1) if known else None,
                "score_by_day": MetadataValue.json(overall),
                "summary": MetadataValue.md(quality_report.summary_table(rows)),
            }
        )
