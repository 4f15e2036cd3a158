"""Run metrics for Prometheus, pushed to a Pushgateway after every main-job and report run.

The numbers come from what the run recorded in the Dagster instance (its materialisations,
their metadata and its check evaluations), so a run killed with kill -9 and marked failed by
run monitoring is pushed like any other failed run, and a run cancelled once it had started
(from the UI or the API) like one too, with ``lakehouse_run_canceled`` set. Each push replaces the
job's group on the Pushgateway (grouping key: the job), so the Pushgateway holds at most one
run per job: the newest finished one (a main run that scored its days removes the report
job's older group). The sensor pushes exactly that, idempotently: its cursor records what it
pushed and moves only once the Pushgateway took it, so a push that failed is made at the next tick,
and an older run can never overwrite a newer one.

Every metric is therefore a gauge describing that last run, and none ends in ``_total``:
Prometheus reserves the suffix for counters, and a count pushed afresh by each run is a gauge
(``increase()`` over it would be wrong). Labels are bounded: layer, table, rule, severity,
outcome, job, and the run's days; never a run or event id. deployment/prometheus/ holds the
scrape config and the alert rules built on these names.
"""

import json
import urllib.error
from collections import Counter, defaultdict

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway

from lakehouse_assets.automation.sensors import never_ran, scored_its_days
from lakehouse_assets.jobs import QUALITY_REPORT, daily_lakehouse, quality_report
from lakehouse_assets.partitions import days_of_run
from spark_jobs.settings import Settings

PUSHGATEWAY_ENV = "LAKEHOUSE_PUSHGATEWAY_URL"
METERED_JOBS = (daily_lakehouse.name, quality_report.name)
GOLD = "gold"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
NEWEST_SCANNED = 100  # finished runs of a job looked at for its newest that ran


def run_partition(run: DagsterRun) -> str:
    """The run's days as one label value: a day, ``first..last``, or ``unpartitioned``."""
    span = days_of_run(run.tags)
    if span is None:
        return "unpartitioned"
    return span[0] if span[0] == span[1] else f"{span[0]}..{span[1]}"


def run_registry(instance: DagsterInstance, run: DagsterRun) -> CollectorRegistry:
    """The metrics of one finished run, read back from the instance."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    record = instance.get_run_record_by_id(run.run_id)
    labels = {"job": run.job_name, "partition": run_partition(run)}
    succeeded = run.status == DagsterRunStatus.SUCCESS
    success = gauge("lakehouse_run_success", "1 if the last run succeeded, 0 if not", tuple(labels))
    success.labels(**labels).set(int(succeeded))
    # Not succeeded either, but stopped by someone, not by an error: an alert of its own, not
    # the failure's page.
    canceled = gauge("lakehouse_run_canceled", "1 if the last run was cancelled", tuple(labels))
    canceled.labels(**labels).set(int(run.status == DagsterRunStatus.CANCELED))
    if record is not None and record.start_time and record.end_time:
        duration = gauge(
            "lakehouse_run_duration_seconds", "Wall time of the last run", tuple(labels)
        )
        duration.labels(**labels).set(record.end_time - record.start_time)
        finished = gauge(
            "lakehouse_run_finished_timestamp_seconds", "When the last run ended", tuple(labels)
        )
        finished.labels(**labels).set(record.end_time)

    # The last event per asset and day (per check and day): a step retried within the run
    # (dbt's, after a busy catalog) records its materialisations and checks again.
    materialisations = list({
        (m.asset_key, m.partition): m
        for m in (
            entry.get_dagster_event().step_materialization_data.materialization
            for entry in instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
            )
        )
    }.values())  # fmt: skip
    _rows(gauge, materialisations)
    evaluations = {}
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.get_dagster_event().asset_check_evaluation_data
        evaluations[(evaluation.asset_check_key, evaluation.partition)] = evaluation
    checks = Counter(
        (e.severity.value, "passed" if e.passed else "failed") for e in evaluations.values()
    )
    outcomes = gauge(
        "lakehouse_asset_checks", "Asset checks the last run evaluated", ("severity", "outcome")
    )
    for (severity, outcome), n in checks.items():
        outcomes.labels(severity=severity, outcome=outcome).set(n)
    _quality_score(gauge, materialisations)
    # Each Gold table's freshness: the marts' with the main job; the report's table with a
    # report run (also one that failed: its table then goes stale in Prometheus) and with a
    # main run that scored its days (which removes the report job's group: push_run_metrics).
    is_report_run = run.job_name == quality_report.name
    scored = any(m.asset_key == QUALITY_REPORT for m in materialisations)

    def pushed_here(table: AssetKey) -> bool:
        return (is_report_run or scored) if table == QUALITY_REPORT else not is_report_run

    _gold_freshness(
        gauge, instance, [k for k in instance.get_asset_keys(prefix=[GOLD]) if pushed_here(k)]
    )
    return registry


def _value(metadata: dict, name: str):
    entry = metadata.get(name)
    return None if entry is None else entry.value


def _rows(gauge, materialisations) -> None:
    """Rows written per table (each day's own count, summed over the run's days); Silver's
    judged and quarantined rows per table and day, and its quarantine by rule."""
    written = defaultdict(int)
    judged, quarantined, by_rule = {}, {}, {}
    for m in materialisations:
        layer, table = m.asset_key.path[0], "_".join(m.asset_key.path[1:])
        metadata = m.metadata
        rows = _value(metadata, "dagster/row_count")
        if rows is not None:
            written[(layer, table)] += int(rows)
        day = m.partition or "unpartitioned"
        bronze_rows = _value(metadata, "bronze_rows")
        if layer == "silver" and bronze_rows is not None:
            judged[(table, day)] = int(bronze_rows)
            quarantined[(table, day)] = int(_value(metadata, "quarantined") or 0)
        rules = _value(metadata, "rows_by_rule")
        if rules is not None:  # the window's figures, the same on each day's event
            by_rule[table.removesuffix("_quarantine")] = rules
    rows_written = gauge(
        "lakehouse_rows_written", "Rows the last run wrote, per table", ("layer", "table")
    )
    for (layer, table), n in written.items():
        rows_written.labels(layer=layer, table=table).set(n)
    judged_g = gauge(
        "lakehouse_silver_rows_judged",
        "Bronze rows Silver judged in the last run, per table and day",
        ("table", "partition"),
    )
    quarantined_g = gauge(
        "lakehouse_silver_rows_quarantined",
        "Rows Silver quarantined in the last run, per table and day",
        ("table", "partition"),
    )
    for (table, day), n in judged.items():
        judged_g.labels(table=table, partition=day).set(n)
        quarantined_g.labels(table=table, partition=day).set(quarantined[(table, day)])
    rule_g = gauge(
        "lakehouse_rows_quarantined_by_rule",
        "Rows the last run quarantined, per Silver table and the rule they broke",
        ("table", "rule"),
    )
    for table, rules in by_rule.items():
        for rule, n in rules.items():
            rule_g.labels(table=table, rule=rule).set(n)


def _quality_score(gauge, materialisations) -> None:
    scores = {
        m.partition: _value(m.metadata, "score")
        for m in materialisations
        if m.asset_key == QUALITY_REPORT and m.partition
    }
    if scores:
        score = gauge(
            "lakehouse_quality_score_ratio",
            "The day's data quality score (gold.data_quality_daily), 0 to 1",
            ("partition",),
        )
        for day, value in scores.items():
            if value is not None:  # a day with no check judged has no score
                score.labels(partition=day).set(value / 100)


def _gold_freshness(gauge, instance: DagsterInstance, tables: list[AssetKey]) -> None:
    """When each Gold table's newest day was last written (a table rebuilt whole: its last
    rebuild). A timestamp, not an age, so Prometheus sees a table go stale while no run pushes
    (time() minus it); the newest day, so a backfill of older days does not look fresh."""
    written = gauge(
        "lakehouse_gold_newest_day_written_timestamp_seconds",
        "When each Gold table's newest day (or whole table) was last written",
        ("table",),
    )
    for key in tables:
        days = instance.get_materialized_partitions(key)
        wanted = AssetRecordsFilter(asset_key=key, asset_partitions=[max(days)] if days else None)
        records = instance.fetch_materializations(wanted, limit=1).records
        if records:
            written.labels(table=key.path[-1]).set(records[0].timestamp)


def push_run_metrics(instance: DagsterInstance, run: DagsterRun, settings: Settings) -> None:
    """Replace the job's group on the Pushgateway with this run's metrics; an unreachable
    Pushgateway raises one line.

    A main run that scored its days itself also removes the report job's group, when the
    report job's newest run ended before it: that group holds the score of an older day, whose
    main run had failed before scoring it, and its alerts would otherwise fire on after the
    days that followed were scored fine."""
    registry = run_registry(instance, run)
    url = settings.pushgateway_url
    try:
        push_to_gateway(url, job=run.job_name, registry=registry, timeout=10)
        if _supersedes_the_report_job(instance, run):
            delete_from_gateway(url, job=quality_report.name, timeout=10)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PushFailed(
            f"the Pushgateway at {url} ({PUSHGATEWAY_ENV}) did not take the metrics of run "
            f"{run.run_id[:8]}: {reason}; start it or unset {PUSHGATEWAY_ENV}"
        ) from None


def _supersedes_the_report_job(instance: DagsterInstance, run: DagsterRun) -> bool:
    """A main run that scored its days and ended after the report job's newest finished run."""
    if run.job_name != daily_lakehouse.name or not scored_its_days(instance, run.run_id):
        return False
    reports = instance.get_run_records(
        RunsFilter(job_name=quality_report.name, statuses=FINISHED), limit=1
    )
    record = instance.get_run_record_by_id(run.run_id)
    if not reports or record is None:
        return True
    return (reports[0].end_time or 0.0) <= (record.end_time or 0.0)


class PushFailed(Exception):
    """The Pushgateway did not take a run's metrics (one line: where, which run, why)."""


def newest_finished_runs(instance: DagsterInstance) -> dict[str, DagsterRun]:
    """Per metered job, its newest run that succeeded, failed or was cancelled (CLI runs
    included), the one that ended first first: pushed in that order, a main run that scored
    its days clears a report run that ended before it (``push_run_metrics``), never one that
    ended after."""
    newest = []
    for job in METERED_JOBS:
        finished = RunsFilter(job_name=job, statuses=FINISHED)
        # Not a run cancelled in the queue: it never ran, and would hide the last one that did
        # (a failed run's page resolved by a backfill's cancelled days).
        records = instance.get_run_records(finished, limit=NEWEST_SCANNED)
        newest += [r for r in records if not never_ran(r)][:1]
    newest.sort(key=lambda record: record.end_time or 0.0)
    return {record.dagster_run.job_name: record.dagster_run for record in newest}


@sensor(
    name="prometheus_metrics",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Pushes the newest finished run of {' and '.join(METERED_JOBS)} to the "
    f"Pushgateway in ${PUSHGATEWAY_ENV}, when set; a failed push is made at the next tick.",
)
def prometheus_metrics(context: SensorEvaluationContext):
    settings = Settings.from_env()  # read at tick time: point it elsewhere without redeploy
    if not settings.pushgateway_url:
        return SkipReason(f"{PUSHGATEWAY_ENV} is not set; not pushing")
    pushed = json.loads(context.cursor) if context.cursor else {}
    new = {
        job: run for job, run in newest_finished_runs(context.instance).items()
        if pushed.get(job) != run.run_id
    }  # fmt: skip
    if not new:
        return SkipReason("no run finished since the last push")
    failures = []
    for job, run in new.items():
        try:
            push_run_metrics(context.instance, run, settings)
        except PushFailed as exc:
            failures.append(str(exc))
            continue
        pushed[job] = run.run_id  # this job's cursor moves only once its push was taken
        context.update_cursor(json.dumps(pushed, sort_keys=True))
    if failures:
        raise PushFailed(failures[0])  # the tick fails, in one line; the next tick retries
    return SkipReason("pushed " + ", ".join(f"{j} run {r.run_id[:8]}" for j, r in new.items()))
