"""The lakehouse code location: assets, checks, resources, jobs, schedules, sensors.

Assembly only.
"""

from dagster import Definitions, in_process_executor, with_source_code_references

from lakehouse_assets.automation import (
    ARRIVAL_JOBS,
    LandingResource,
    daily_schedule,
    freshness_checks,
    freshness_sensor,
    landing_sensors,
    quality_after_failure,
    quality_after_success,
    slack_on_run_failure,
)
from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold import (
    data_quality_daily,
    gold_current_state,
    gold_daily,
    gold_schema_checks,
)
from lakehouse_assets.jobs import daily_lakehouse, quality_report
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets
from lakehouse_assets.sources import source_specs
from spark_jobs.settings import Settings

defs = Definitions(
    assets=[
        *source_specs(Settings.from_env()),
        *with_source_code_references(
            [*bronze_assets, *silver_assets, gold_daily, gold_current_state, data_quality_daily]
        ),
    ],
    asset_checks=[*freshness_checks, *gold_schema_checks],
    jobs=[daily_lakehouse, quality_report, *ARRIVAL_JOBS.values()],
    schedules=[daily_schedule],
    sensors=[
        *landing_sensors,
        quality_after_success,
        quality_after_failure,
        slack_on_run_failure,
        freshness_sensor,
    ],
    resources={"spark": SparkResource(), "dbt": dbt_resource, "landing": LandingResource()},
    # One process, hence one Spark JVM, per run: the PySpark assets share a session.
    executor=in_process_executor,
)
