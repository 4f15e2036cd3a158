from lakehouse_assets.resources.dbt import dbt_project, dbt_resource
from lakehouse_assets.resources.spark import SparkResource

__all__ = ["SparkResource", "dbt_project", "dbt_resource"]
