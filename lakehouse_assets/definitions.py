"""The lakehouse code location: assets, resources, jobs. Assembly only."""

from dagster import Definitions, in_process_executor

from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold import gold_current_state, gold_daily
from lakehouse_assets.jobs import daily_lakehouse
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets

defs = Definitions(
    assets=[*bronze_assets, *silver_assets, gold_daily, gold_current_state],
    jobs=[daily_lakehouse],
    resources={"spark": SparkResource(), "dbt": dbt_resource},
    # One process, hence one Spark JVM, per run: the PySpark assets share a session.
    executor=in_process_executor,
)
