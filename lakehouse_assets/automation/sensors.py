"""Sensors that react to runs of the main job."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    run_status_sensor,
)

from lakehouse_assets.jobs import daily_lakehouse, quality_report
from lakehouse_assets.partitions import PARTITION_TAGS


def quality_after(status: DagsterRunStatus, outcome: str):
    """Score the same days a finished main-job run covered, once per run."""

    @run_status_sensor(
        name=f"quality_after_{outcome}",
        run_status=status,
        monitored_jobs=[daily_lakehouse],
        request_job=quality_report,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Scores the days' data quality after the main job's {outcome}.",
    )
    def _sensor(context: RunStatusSensorContext):
        run = context.dagster_run
        tags = {k: v for k, v in run.tags.items() if k in PARTITION_TAGS}
        return RunRequest(run_key=f"quality-{run.run_id}", tags={**tags, "after_run": run.run_id})

    return _sensor


quality_after_success = quality_after(DagsterRunStatus.SUCCESS, "success")
# A failed day is exactly the day whose score someone wants to see.
quality_after_failure = quality_after(DagsterRunStatus.FAILURE, "failure")
