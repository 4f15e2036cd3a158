"""Quality rules (declared beside each table in spark_jobs) as Dagster asset checks."""

from lakehouse_assets.checks.rules import check_specs, day_results

__all__ = ["check_specs", "day_results"]
