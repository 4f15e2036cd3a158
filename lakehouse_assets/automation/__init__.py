from lakehouse_assets.automation.alerts import slack_on_run_failure
from lakehouse_assets.automation.landing import (
    ARRIVAL_JOBS,
    LandingResource,
    build_arrival_jobs,
    build_landing_sensors,
    landing_sensors,
)
from lakehouse_assets.automation.metrics import prometheus_metrics
from lakehouse_assets.automation.schedules import daily_schedule, freshness_checks, freshness_sensor
from lakehouse_assets.automation.sensors import (
    quality_after_canceled,
    quality_after_failure,
    quality_after_success,
)

__all__ = [
    "ARRIVAL_JOBS",
    "LandingResource",
    "build_arrival_jobs",
    "build_landing_sensors",
    "daily_schedule",
    "freshness_checks",
    "freshness_sensor",
    "landing_sensors",
    "prometheus_metrics",
    "quality_after_canceled",
    "quality_after_failure",
    "quality_after_success",
    "slack_on_run_failure",
]
