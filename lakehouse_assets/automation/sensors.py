"""Sensors that react to runs of the main job."""

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRecord,
    RunRequest,
    RunStatusSensorContext,
    SkipReason,
    run_status_sensor,
)

from lakehouse_assets.jobs import QUALITY_REPORT, daily_lakehouse, quality_report
from lakehouse_assets.partitions import PARTITION_TAGS


def scored_its_days(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run's own report step wrote the quality report (the main job runs it after
    every step that builds a table)."""
    return any(
        entry.get_dagster_event().asset_key == QUALITY_REPORT
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    )


def never_ran(record: RunRecord | None) -> bool:
    """A run cancelled before it started (in the queue: a backfill's days, say): it wrote
    nothing, so there is nothing to score or to push."""
    if record is None:
        return False
    return record.dagster_run.status == DagsterRunStatus.CANCELED and record.start_time is None


ENDED = {
    DagsterRunStatus.SUCCESS: "succeeded",
    DagsterRunStatus.FAILURE: "failed",
    DagsterRunStatus.CANCELED: "was cancelled",
}


def quality_after(status: DagsterRunStatus):
    """Score the same days a finished main-job run covered, once per run, unless the run's
    own report step did: it did not when the run failed before it (a blocking check stopped
    Gold), was cancelled before it (once started), or its selection left the report out."""

    @run_status_sensor(
        name=f"quality_after_{status.value.lower()}",
        run_status=status,
        monitored_jobs=[daily_lakehouse],
        request_job=quality_report,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Scores the days' data quality after a main-job run {ENDED[status]}, "
        "when the run did not score them itself.",
    )
    def _sensor(context: RunStatusSensorContext):
        run = context.dagster_run
        if never_ran(context.instance.get_run_record_by_id(run.run_id)):
            return SkipReason(f"run {run.run_id[:8]} was cancelled before it started")
        if scored_its_days(context.instance, run.run_id):
            return SkipReason(f"run {run.run_id[:8]} scored its days itself")
        tags = {k: v for k, v in run.tags.items() if k in PARTITION_TAGS}
        return RunRequest(run_key=f"quality-{run.run_id}", tags={**tags, "after_run": run.run_id})

    return _sensor


quality_after_success = quality_after(DagsterRunStatus.SUCCESS)
# A failed day is exactly the day whose score someone wants to see.
quality_after_failure = quality_after(DagsterRunStatus.FAILURE)
# So is a cancelled one: the tables written before the cancel hold the new days.
quality_after_canceled = quality_after(DagsterRunStatus.CANCELED)
