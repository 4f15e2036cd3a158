"""The schedule, the landing sensors against a real S3 API, and failure alerts over HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    asset,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
    materialize,
)

from lakehouse_assets.automation import landing_sensors, slack_on_run_failure
from lakehouse_assets.automation.landing import LandedObject, LandingResource, plan_runs
from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.definitions import defs
from lakehouse_assets.partitions import daily_partitions
from lakehouse_assets.resources import SparkResource
from spark_jobs.settings import Settings
from tests.builders import s3_landing, webhook


def test_the_schedule_runs_yesterday_at_six():
    # The job's partitions come from its assets: the definitions resolve the schedule.
    daily_schedule = defs.resolve_schedule_def("daily_lakehouse_at_6")
    assert daily_schedule.cron_schedule == "0 6 * * *"
    assert daily_schedule.job_name == "daily_lakehouse"
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
    )
    requests = daily_schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-03-04"]


def test_plan_runs_is_exactly_once_per_object_version():
    first = [
        LandedObject("clickstream/2026-08-02/a.jsonl", "v1"),
        LandedObject("clickstream/2026-08-01/b.jsonl", "v1"),  # out of order
        LandedObject("clickstream/2026-08-02/c.jsonl", "v1"),
        LandedObject("clickstream/not-a-day/x.jsonl", "v1"),  # ignored
    ]
    requests, cursor = plan_runs(first, {}, "clickstream")
    assert [r.partition_key for r in requests] == ["2026-08-01", "2026-08-02"]
    assert plan_runs(first, cursor, "clickstream")[0] == []
    again, _ = plan_runs(first, {}, "clickstream")
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # same key: deduplicated
    rewritten = [LandedObject("clickstream/2026-08-01/b.jsonl", "v2"), *first[1:]]
    requests, _ = plan_runs(rewritten, cursor, "clickstream")
    assert [r.partition_key for r in requests] == ["2026-08-01"]


def test_objects_already_in_bronze_are_remembered_not_rerun():
    objects = [
        LandedObject("clickstream/2026-08-01/a.jsonl", "v1", modified=100.0),
        LandedObject("clickstream/2026-08-02/a.jsonl", "v1", modified=300.0),
    ]
    built = {"2026-08-01": 200.0, "2026-08-02": 200.0}  # built after a, before b landed
    requests, cursor = plan_runs(objects, {}, "clickstream", built.get)
    assert [r.partition_key for r in requests] == ["2026-08-02"]
    assert set(cursor) == {o.key for o in objects}


def test_s3_arrivals_become_runs_that_land_rows_in_bronze(s3_server, monkeypatch, spark):
    s3 = s3_landing(monkeypatch, s3_server, "landing-bucket", "lake")

    def put(day: str, name: str, events: list[str]):
        body = "".join(
            json.dumps({"event_id": e, "user_id": 1, "event_type": "view",
                        "timestamp": f"{day}T10:00:00Z"}) + "\n"
            for e in events
        )  # fmt: skip
        s3.put_object(Bucket="landing-bucket", Key=f"lake/clickstream/{day}/{name}", Body=body)

    sensor = next(s for s in landing_sensors if s.name == "clickstream_landed")
    resources = {"landing": LandingResource.from_settings(Settings.from_env())}
    instance = DagsterInstance.ephemeral()  # the sensor sees what the runs materialised

    def tick(cursor):
        # A nested resource (LandingResource's S3Resource) is opened and closed per tick.
        with build_sensor_context(
            cursor=cursor,
            resources=resources,
            repository_def=defs.get_repository_def(),
            instance=instance,
        ) as context:
            return sensor.evaluate_tick(context)

    put("2026-09-02", "part-0.jsonl", ["s-1", "s-2"])
    put("2026-09-01", "part-0.jsonl", ["s-3"])  # arrives after the newer day
    first = tick(None)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-09-01", "2026-09-02"]

    clickstream = next(a for a in bronze_assets if a.key.path == ["bronze", "clickstream"])
    time.sleep(2.1)  # S3 times are whole seconds: let the build be clearly after the arrivals
    for request in first.run_requests:
        result = materialize(
            [clickstream],
            partition_key=request.partition_key,
            resources={"spark": SparkResource()},
            instance=instance,
        )
        assert result.success
    bronze = spark.table("lakehouse.bronze.clickstream").where(
        "_partition_date between '2026-09-01' and '2026-09-02'"
    )
    assert bronze.count() == 3
    files = {r._source_file for r in bronze.select("_source_file").distinct().collect()}
    assert files == {
        "s3://landing-bucket/lake/clickstream/2026-09-01/part-0.jsonl",
        "s3://landing-bucket/lake/clickstream/2026-09-02/part-0.jsonl",
    }

    second = tick(first.cursor)
    assert second.run_requests == []
    assert "no new clickstream objects" in second.skip_message
    # A sensor that never ticked before (empty cursor) does not rerun what Bronze holds.
    assert tick(None).run_requests == []

    put("2026-09-01", "part-1.jsonl", ["s-4"])  # late, for an earlier day
    third = tick(first.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-09-01"]
    put("2026-09-02", "part-0.jsonl", ["s-1", "s-2", "s-5"])  # rewritten: new ETag
    fourth = tick(third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["2026-09-02"]


def finished_run_context(instance, result, sensor_name: str, event_type: str):
    """The context a run-status sensor gets for ``result``'s run, from its real final event."""
    event = next(e for e in result.all_events if e.event_type_value == event_type)
    return build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=event,
    )


@asset(key=["bronze", "always_fails"], partitions_def=daily_partitions)
def always_fails():
    """A stand-in for a broken step: the alert path, not the failure, is under test."""
    raise RuntimeError("source database unreachable: connection refused")


def test_failed_runs_post_asset_partition_and_error_to_slack(monkeypatch):
    with webhook() as (url, received), DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("LAKEHOUSE_SLACK_WEBHOOK_URL", url)
        result = materialize(
            [always_fails], partition_key="2026-03-04", instance=instance, raise_on_error=False
        )
        assert not result.success
        assert instance.get_run_by_id(result.run_id).status == DagsterRunStatus.FAILURE
        context = finished_run_context(instance, result, "slack_on_run_failure", "PIPELINE_FAILURE")
        slack_on_run_failure(context.for_run_failure())
    [payload] = received
    assert payload["partition"] == "2026-03-04"
    assert payload["assets"] == ["bronze/always_fails"]
    assert "connection refused" in " ".join(payload["failed_steps"])
    assert "failed for 2026-03-04" in payload["text"]


@asset(key=["bronze", "always_works"], partitions_def=daily_partitions)
def always_works():
    """A stand-in run for the quality-report trigger."""


def test_a_main_run_that_did_not_score_its_days_is_followed_by_a_quality_report():
    from lakehouse_assets.automation import quality_after_success

    with DagsterInstance.ephemeral() as instance:
        result = materialize([always_works], partition_key="2026-03-04", instance=instance)
        context = finished_run_context(
            instance, result, "quality_after_success", "PIPELINE_SUCCESS"
        )
        request = quality_after_success(context)
    assert request.run_key == f"quality-{result.run_id}"
    assert request.tags["dagster/partition"] == "2026-03-04"


@asset(key=["gold", "data_quality_daily"], partitions_def=daily_partitions)
def scored_in_run():
    """A stand-in for the main run's own quality report step."""


@asset(
    key=["gold", "fails_after_the_report"], deps=[scored_in_run], partitions_def=daily_partitions
)
def fails_after_the_report():
    """A step after the report that fails (the report's freshness check, say)."""
    raise RuntimeError("catalog unreachable")


def test_a_run_that_scored_its_days_itself_is_not_scored_again():
    from lakehouse_assets.automation import quality_after_failure, quality_after_success

    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [always_works, scored_in_run], partition_key="2026-03-04", instance=instance
        )
        context = finished_run_context(
            instance, result, "quality_after_success", "PIPELINE_SUCCESS"
        )
        skipped = quality_after_success(context)
        # Its report ran, then a later step failed: the day is scored all the same.
        failed = materialize(
            [scored_in_run, fails_after_the_report],
            partition_key="2026-03-05",
            instance=instance,
            raise_on_error=False,
        )
        assert not failed.success
        context = finished_run_context(
            instance, failed, "quality_after_failure", "PIPELINE_FAILURE"
        )
        skipped_too = quality_after_failure(context)
    assert skipped.skip_message == f"run {result.run_id[:8]} scored its days itself"
    assert skipped_too.skip_message == f"run {failed.run_id[:8]} scored its days itself"


def test_a_cancelled_main_run_is_scored_and_pushed_as_cancelled_not_failed():
    """Cancelled from the UI before its report step: the day is scored after it, as after a
    failure, and its metrics say cancelled, for an alert of its own. A run cancelled in the
    queue (a backfill's days, say) never ran: neither scored nor pushed over the last run that
    did."""
    from lakehouse_assets.automation import quality_after_canceled
    from lakehouse_assets.automation.metrics import newest_finished_runs, run_registry

    # Named as the main job: the sensors and the metrics know runs by their job's name.
    main = define_asset_job("daily_lakehouse", [always_works], partitions_def=daily_partitions)
    job = Definitions(assets=[always_works], jobs=[main]).resolve_job_def("daily_lakehouse")

    def cancelled(run_id: str):
        """The run after the cancel, and the context the sensor gets for its last event."""
        instance.report_run_canceled(instance.get_run_by_id(run_id))
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.CANCELED
        [event] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_CANCELED)
        return run, build_run_status_sensor_context(
            sensor_name="quality_after_canceled",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=event.get_dagster_event(),
        )

    with DagsterInstance.ephemeral() as instance:
        # A run that ran, then marked cancelled: the records a run cancelled mid-step leaves
        # (tests/test_faults.py cancels one under a real daemon).
        ran = job.execute_in_process(instance=instance, partition_key="2026-03-04")
        run, context = cancelled(ran.run_id)
        request = quality_after_canceled(context)
        # Created and never started, as a run in the queue (a queued run also needs the
        # code location it came from, which a test's job has not).
        queued = instance.create_run_for_job(job, tags={"dagster/partition": "2026-03-05"})
        never_ran, context = cancelled(queued.run_id)
        skipped = quality_after_canceled(context)
        newest = newest_finished_runs(instance)["daily_lakehouse"]
        registry = run_registry(instance, run)
    assert request.run_key == f"quality-{run.run_id}"
    assert request.tags["dagster/partition"] == "2026-03-04"
    labels = {"job": "daily_lakehouse", "partition": "2026-03-04"}
    assert registry.get_sample_value("lakehouse_run_canceled", labels) == 1
    assert registry.get_sample_value("lakehouse_run_success", labels) == 0
    assert skipped.skip_message == f"run {never_ran.run_id[:8]} was cancelled before it started"
    assert newest.run_id == run.run_id  # not the newer run that never ran
