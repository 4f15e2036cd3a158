"""The lakehouse code location: assets, checks, resources, jobs, schedules, sensors.

Assembly only.
"""

from dagster import Definitions, in_process_executor, with_source_code_references

from lakehouse_assets.automation import (
    LandingResource,
    build_arrival_jobs,
    build_landing_sensors,
    daily_schedule,
    freshness_checks,
    freshness_sensor,
    prometheus_metrics,
    quality_after_canceled,
    quality_after_failure,
    quality_after_success,
    slack_on_run_failure,
)
from lakehouse_assets.bronze import build_bronze_assets
from lakehouse_assets.gold import (
    data_quality_daily,
    gold_marts,
    gold_schema_checks,
)
from lakehouse_assets.jobs import daily_lakehouse, quality_report
from lakehouse_assets.maintenance import (
    build_maintenance_assets,
    iceberg_maintenance,
    weekly_maintenance,
)
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import build_silver_assets
from lakehouse_assets.sources import source_specs
from lakehouse_assets.stream import (
    SELF_MAINTAINED,
    inventory_micro_batch_job,
    inventory_micro_batches,
    inventory_stream,
    low_stock_now,
)
from spark_jobs.registry import SOURCES, Source
from spark_jobs.settings import Settings


def build_definitions(registered: tuple[Source, ...] = SOURCES) -> Definitions:
    """The code location for a registry of sources (``spark_jobs.registry``): its sources,
    Bronze and Silver assets, landing sensors and arrival jobs all come from it."""
    settings = Settings.from_env()
    arrival_jobs = build_arrival_jobs(registered)
    tables = [
        *build_bronze_assets(registered),
        *build_silver_assets(registered),
        gold_marts,
        data_quality_daily,
        inventory_stream,
        low_stock_now,
    ]
    maintained = [key for table in tables for key in table.keys if key not in SELF_MAINTAINED]
    return Definitions(
        assets=[
            *source_specs(settings, registered),
            *with_source_code_references([*tables, *build_maintenance_assets(maintained)]),
        ],
        asset_checks=[*freshness_checks, *gold_schema_checks],
        jobs=[
            daily_lakehouse,
            quality_report,
            iceberg_maintenance,
            inventory_micro_batch_job,
            *arrival_jobs.values(),
        ],
        schedules=[daily_schedule, weekly_maintenance],
        sensors=[
            *build_landing_sensors(arrival_jobs, registered),
            quality_after_success,
            quality_after_failure,
            quality_after_canceled,
            slack_on_run_failure,
            prometheus_metrics,
            freshness_sensor,
            inventory_micro_batches,
        ],
        resources={
            "spark": SparkResource(),
            "dbt": dbt_resource,
            "landing": LandingResource.from_settings(settings),
        },
        # One process, hence one Spark JVM, per run: the PySpark assets share a session.
        executor=in_process_executor,
    )


defs = build_definitions()
