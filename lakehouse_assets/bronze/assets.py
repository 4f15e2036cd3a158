"""Bronze assets: each source lands as it was, with lineage, one Iceberg table per source."""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Backoff,
    Config,
    Failure,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from lakehouse_assets import sources
from lakehouse_assets.annotations import OWNERS, code_reference, layer
from lakehouse_assets.checks import day_results
from lakehouse_assets.partitions import daily_partitions, single_run, window_of
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.resources.catalog import table_column_schema
from lakehouse_assets.retries import retried_on_error
from spark_jobs import bronze
from spark_jobs.bronze import WriteResult
from spark_jobs.quality import Verdict
from spark_jobs.registry import SOURCES, Source
from spark_jobs.settings import LakehouseSetupError

COVERAGE_CHECK = "source_rows_extracted"

# Sources fail transiently (a database restart, a slow bucket): retry before paging anyone.
# Raised by the step itself (``retried_on_error``), not set as the asset's retry policy: a
# policy would also retry a cancelled run's step, and the run would go on.
EXTRACT_RETRIES = RetryPolicy(max_retries=2, delay=15, backoff=Backoff.EXPONENTIAL)


class ExtractConfig(Config):
    full_snapshot: bool = False
    """Read every row of the source table, not only the window's changes (a re-sync). A
    first load does this by itself."""


def _metadata(result: WriteResult, context: AssetExecutionContext, spark: SparkResource) -> dict:
    """The run's metadata; each day's materialisation also gets that day's row count."""
    for day in context.partition_keys:
        context.add_asset_metadata(
            {"dagster/row_count": result.rows_per_day.get(day, 0)}, partition_key=day
        )
    return {
        "table_rows": result.table_rows,
        "dagster/table_name": result.table,
        "dagster/column_schema": table_column_schema(spark.settings(), result.table),
        "snapshot_id": str(result.snapshot_id),
        "rows_per_day": result.rows_per_day,
        "window": str(window_of(context)),
        **result.detail,
    }


def _bronze_asset(logic: str) -> dict:
    """What every Bronze asset shares: daily, one run per backfill, annotated."""
    return {
        "group_name": "bronze",
        "partitions_def": daily_partitions,
        "backfill_policy": single_run,
        "kinds": {"spark", "iceberg"},
        "owners": OWNERS,
        "tags": layer("bronze"),
        "metadata": code_reference("spark_jobs/bronze.py", logic, "Bronze logic"),
    }


def _coverage_check(key: AssetKey) -> AssetCheckSpec:
    return AssetCheckSpec(
        COVERAGE_CHECK,
        asset=key,
        description="[warn] every source row changed up to the window's end is in Bronze "
        "(a gap means a day was never run)",
        partitions_def=daily_partitions,
    )


def extract_asset(source: Source):
    """A Bronze asset for an operational table, with a check that Bronze has seen every row."""
    table = source.name
    key = AssetKey(["bronze", source.bronze])

    @asset(
        key=key,
        description=source.bronze_description,
        deps=[sources.source_key(source)],
        check_specs=[_coverage_check(key)],
        **_bronze_asset("def extract_source_table"),
    )
    def _bronze(context: AssetExecutionContext, config: ExtractConfig, spark: SparkResource):
        window, settings = window_of(context), spark.settings()
        with retried_on_error(context, EXTRACT_RETRIES):
            try:
                result = bronze.extract_source_table(
                    spark.session, settings, table, window, context.run_id, config.full_snapshot
                )
            except LakehouseSetupError as exc:  # misconfigured, not flaky: no retries
                raise Failure(str(exc), allow_retries=False) from None
            source_rows, missing, sample = bronze.source_coverage(
                spark.session, settings, table, window
            )
            coverage = Verdict(
                name=COVERAGE_CHECK,
                action="warn",
                passed=missing == 0,
                severity="WARN",
                failing_rows=missing,
                description="source rows changed up to the window's end are in Bronze",
                sample=sample,
                detail={"source_rows": source_rows},
            )
            # Its metadata reads the catalog, and its checks the instance: retried too, as the
            # whole step was under a retry policy (the write is idempotent).
            yield MaterializeResult(metadata=_metadata(result, context, spark))
            yield from day_results(
                context, key, [coverage], lambda day: result.rows_per_day.get(day, 0)
            )

    return _bronze


def landing_asset(source: Source):
    """A Bronze asset for a landing feed: every raw line, verbatim."""

    @asset(
        key=["bronze", source.bronze],
        description=source.bronze_description,
        deps=[sources.source_key(source)],
        **_bronze_asset("def ingest_landing"),
    )
    def _bronze(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
        with retried_on_error(context, EXTRACT_RETRIES):
            result = bronze.ingest_landing(
                spark.session,
                spark.settings(),
                source.name,
                source.bronze,
                window_of(context),
                context.run_id,
            )
            return MaterializeResult(metadata=_metadata(result, context, spark))

    return _bronze


def build_bronze_assets(registered: tuple[Source, ...] = SOURCES) -> list:
    """One Bronze asset per source of the registry."""
    return [
        extract_asset(source) if source.kind == "database" else landing_asset(source)
        for source in registered
    ]


bronze_assets = build_bronze_assets()
