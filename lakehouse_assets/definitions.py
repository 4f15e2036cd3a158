"""The lakehouse code location: assets, resources, jobs. Assembly only."""

from dagster import Definitions, in_process_executor

from lakehouse_assets.automation import quality_after_failure, quality_after_success
from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold import data_quality_daily, gold_current_state, gold_daily
from lakehouse_assets.jobs import daily_lakehouse, quality_report
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets

defs = Definitions(
    assets=[*bronze_assets, *silver_assets, gold_daily, gold_current_state, data_quality_daily],
    jobs=[daily_lakehouse, quality_report],
    sensors=[quality_after_success, quality_after_failure],
    resources={"spark": SparkResource(), "dbt": dbt_resource},
    # One process, hence one Spark JVM, per run: the PySpark assets share a session.
    executor=in_process_executor,
)
