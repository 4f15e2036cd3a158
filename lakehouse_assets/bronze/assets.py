"""Bronze assets: each source lands as it was, with lineage, one Iceberg table per source."""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
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


def source_table_asset(table: str) -> AssetsDefinition:
    @asset(
        key=["bronze", table],
        group_name="bronze",
        description=SOURCE_DESCRIPTIONS[table],
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        retry_policy=EXTRACT_RETRIES,
        kinds={"spark", "iceberg"},
    )
    def _extract(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
        result = bronze.extract_source_table(
            spark.session, spark.settings(), table, window_of(context), context.run_id
        )
        return MaterializeResult(metadata=_metadata(result, context))

    return _extract


def landing_asset(source: str, table: str) -> AssetsDefinition:
    @asset(
        key=["bronze", table],
        group_name="bronze",
        description=LANDING_DESCRIPTIONS[source],
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        retry_policy=EXTRACT_RETRIES,
        kinds={"spark", "iceberg"},
    )
    def _ingest(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
        result = bronze.ingest_landing(
            spark.session, spark.settings(), source, table, window_of(context), context.run_id
        )
        return MaterializeResult(metadata=_metadata(result, context))

    return _ingest


bronze_assets = [source_table_asset(t) for t in SOURCE_DESCRIPTIONS] + [
    landing_asset(source, table) for source, table in bronze.LANDING_TABLES.items()
]
