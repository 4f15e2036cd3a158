"""The daily schedule and the freshness checks on Gold."""

from datetime import timedelta

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_last_update_freshness_checks,
    build_schedule_from_partitioned_job,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from lakehouse_assets.gold import DAILY_KEYS, DIMENSION_KEYS, data_quality_daily
from lakehouse_assets.jobs import daily_lakehouse
from lakehouse_assets.partitions import TIMEZONE

# 06:00 in the partitions' timezone, for yesterday's partition (the last complete day).
daily_schedule = build_schedule_from_partitioned_job(
    daily_lakehouse,
    hour_of_day=6,
    minute_of_hour=0,
    name="daily_lakehouse_at_6",
    default_status=DefaultScheduleStatus.RUNNING,
)

# Yesterday's Gold partitions must be there by 09:00: three hours for the run and its retries.
gold_partition_freshness = build_time_partition_freshness_checks(
    assets=[*sorted(DAILY_KEYS, key=str), data_quality_daily],
    deadline_cron="0 9 * * *",
    timezone=TIMEZONE,
)
gold_dims_freshness = build_last_update_freshness_checks(
    assets=sorted(DIMENSION_KEYS, key=str), lower_bound_delta=timedelta(hours=27)
)
freshness_checks = [*gold_partition_freshness, *gold_dims_freshness]
freshness_sensor = build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks,
    name="gold_freshness",
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.RUNNING,
)
