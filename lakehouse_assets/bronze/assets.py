"""Bronze assets: each source lands as it was, with lineage, one Iceberg table per source."""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    Backoff,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from lakehouse_assets.partitions import daily_partitions, single_run, window_of
from lakehouse_assets.resources import SparkResource
from spark_jobs import bronze
from spark_jobs.bronze import WriteResult

# Sources fail transiently (a database restart, a slow bucket): retry before paging anyone.
EXTRACT_RETRIES = RetryPolicy(max_retries=2, delay=15, backoff=Backoff.EXPONENTIAL)

SOURCE_DESCRIPTIONS = {
    "customers": "Customers changed that day in the operational database, as extracted.",
    "products": "Products changed that day in the operational database, as extracted.",
    "orders": "Orders changed that day in the operational database, as extracted.",
}
LANDING_DESCRIPTIONS = {
    "clickstream": "Every raw clickstream JSON line landed that day, with file and line number.",
    "inventory": "Every raw inventory event line the Kafka sink landed that day.",
}


def _metadata(result: WriteResult, context: AssetExecutionContext) -> dict:
    return {
        "dagster/row_count": result.rows,
        "dagster/table_name": result.table,
        "snapshot_id": str(result.snapshot_id),
        "rows_per_day": result.rows_per_day,
        "window": str(window_of(context)),
    }


def bronze_asset(table: str, description: str, load: Callable[..., WriteResult]):
    """A Bronze asset: ``load(spark, settings, window, run_id)`` writes the window's rows."""

    @asset(
        key=["bronze", table],
        group_name="bronze",
        description=description,
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        retry_policy=EXTRACT_RETRIES,
        kinds={"spark", "iceberg"},
    )
    def _bronze(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
        result = load(spark.session, spark.settings(), window_of(context), context.run_id)
        return MaterializeResult(metadata=_metadata(result, context))

    return _bronze


def _extract(table: str) -> Callable[..., WriteResult]:
    return lambda spark, settings, window, run_id: bronze.extract_source_table(
        spark, settings, table, window, run_id
    )


def _ingest(source: str, table: str) -> Callable[..., WriteResult]:
    return lambda spark, settings, window, run_id: bronze.ingest_landing(
        spark, settings, source, table, window, run_id
    )


bronze_assets = [
    bronze_asset(table, description, _extract(table))
    for table, description in SOURCE_DESCRIPTIONS.items()
] + [
    bronze_asset(table, LANDING_DESCRIPTIONS[source], _ingest(source, table))
    for source, table in bronze.LANDING_TABLES.items()
]
