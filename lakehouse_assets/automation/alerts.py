"""Failure alerts: a Slack incoming webhook (or anything that takes Slack's JSON)."""

import json
import urllib.request

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)

from lakehouse_assets.partitions import days_of_run
from spark_jobs.settings import Settings

WEBHOOK_ENV = "LAKEHOUSE_SLACK_WEBHOOK_URL"


def failure_message(context: RunFailureSensorContext) -> dict:
    """Slack payload: which job, which assets (left stale) and days, which steps failed, why."""
    run = context.dagster_run
    span = days_of_run(run.tags)
    days = "unpartitioned" if span is None else span[0] if span[0] == span[1] else "..".join(span)
    assets = sorted("/".join(k.path) for k in _not_materialized(context))
    failures = [
        f"{event.step_key}: {_error_text(event)[:500]}"
        for event in context.get_step_failure_events()
    ]
    error = context.failure_event.message or "run failed"
    text = f":red_circle: {run.job_name} failed for {days} (run {run.run_id[:8]})"
    return {
        "text": text,
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": days,
        "assets": assets,
        "failed_steps": failures,
        "error": error,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(failures) or error}},
        ],
    }


def _keys(context: RunFailureSensorContext, event_type: DagsterEventType) -> set:
    records = context.instance.get_records_for_run(context.dagster_run.run_id, of_type=event_type)
    return {r.event_log_entry.get_dagster_event().asset_key for r in records.records}


def _not_materialized(context: RunFailureSensorContext) -> set:
    """The assets the run planned but did not materialise: what the failure left stale."""
    planned = _keys(context, DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    return planned - _keys(context, DagsterEventType.ASSET_MATERIALIZATION)


def _error_text(event) -> str:
    data = event.step_failure_data
    error = data.error if data is not None else None
    if error is None:
        return (event.message or "").strip()
    while error.cause is not None:  # Dagster wraps the user's exception: report that one
        error = error.cause
    return error.message.strip()


def post(url: str, payload: dict, timeout: float = 10.0) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


@run_failure_sensor(
    name="slack_on_run_failure",
    default_status=DefaultSensorStatus.RUNNING,
    # Every failed run of the instance, also those started from the CLI (`make demo`), which
    # belong to a code location of their own.
    monitor_all_code_locations=True,
    description=f"Posts failed runs to the Slack webhook in ${WEBHOOK_ENV}, when set.",
)
def slack_on_run_failure(context: RunFailureSensorContext):
    url = Settings.from_env().slack_webhook_url  # read at tick time: rotate without redeploy
    if not url:
        context.log.info(f"{WEBHOOK_ENV} is not set; not alerting")
        return
    post(url, failure_message(context))
