"""Sensors that react to runs of the main job."""

from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunStatusSensorContext,
    run_status_sensor,
)

from lakehouse_assets.jobs import daily_lakehouse, quality_report

PARTITION_TAGS = (
    "dagster/partition",
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)


def _report_for(context: RunStatusSensorContext) -> RunRequest:
    """Score the same days the finished run covered, once per run."""
    run = context.dagster_run
    tags = {k: v for k, v in run.tags.items() if k in PARTITION_TAGS}
    return RunRequest(run_key=f"quality-{run.run_id}", tags={**tags, "after_run": run.run_id})


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_lakehouse],
    request_job=quality_report,
    description="Scores the day's data quality after the main job succeeds.",
)
def quality_after_success(context: RunStatusSensorContext):
    return _report_for(context)


@run_status_sensor(
    run_status=DagsterRunStatus.FAILURE,
    monitored_jobs=[daily_lakehouse],
    request_job=quality_report,
    description="Scores the day's data quality after the main job fails: the day to look at.",
)
def quality_after_failure(context: RunStatusSensorContext):
    return _report_for(context)
