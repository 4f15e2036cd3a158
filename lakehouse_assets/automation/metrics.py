"""Run metrics for Prometheus, pushed to a Pushgateway after every main-job and report run.

The numbers come from what the run recorded in the Dagster instance (its materialisations,
their metadata and its check evaluations), so a run killed with kill -9 and marked failed by
run monitoring is pushed like any other failed run. Each push replaces the job's group on the
Pushgateway (grouping key: the job), so the Pushgateway holds one run per job: the last one.

Every metric is therefore a gauge describing that last run, and none ends in ``_total``:
Prometheus reserves the suffix for counters, and a count pushed afresh by each run is a gauge
(``increase()`` over it would be wrong). Labels are bounded: layer, table, rule, severity,
outcome, job, and the run's days; never a run or event id. deployment/prometheus/ holds the
scrape config and the alert rules built on these names.
"""

import urllib.error
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SkipReason,
    run_status_sensor,
)
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from lakehouse_assets.jobs import daily_lakehouse, quality_report
from lakehouse_assets.partitions import days_of_run
from spark_jobs.settings import Settings

PUSHGATEWAY_ENV = "LAKEHOUSE_PUSHGATEWAY_URL"
METERED_JOBS = (daily_lakehouse.name, quality_report.name)
GOLD = "gold"


def run_partition(run: DagsterRun) -> str:
    """The run's days as one label value: a day, ``first..last``, or ``unpartitioned``."""
    span = days_of_run(run.tags)
    if span is None:
        return "unpartitioned"
    return span[0] if span[0] == span[1] else f"{span[0]}..{span[1]}"


def run_registry(instance: DagsterInstance, run: DagsterRun, timezone: str) -> CollectorRegistry:
    """The metrics of one finished run, read back from the instance."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    record = instance.get_run_record_by_id(run.run_id)
    labels = {"job": run.job_name, "partition": run_partition(run)}
    succeeded = run.status == DagsterRunStatus.SUCCESS
    success = gauge("lakehouse_run_success", "1 if the last run succeeded, 0 if not", tuple(labels))
    success.labels(**labels).set(int(succeeded))
    if record is not None and record.start_time and record.end_time:
        duration = gauge(
            "lakehouse_run_duration_seconds", "Wall time of the last run", tuple(labels)
        )
        duration.labels(**labels).set(record.end_time - record.start_time)
        finished = gauge(
            "lakehouse_run_finished_timestamp_seconds", "When the last run ended", tuple(labels)
        )
        finished.labels(**labels).set(record.end_time)

    materialisations = [
        entry.get_dagster_event().step_materialization_data.materialization
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    ]
    _rows(gauge, materialisations)
    checks = Counter()
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.get_dagster_event().asset_check_evaluation_data
        checks[(evaluation.severity.value, "passed" if evaluation.passed else "failed")] += 1
    outcomes = gauge(
        "lakehouse_asset_checks", "Asset checks the last run evaluated", ("severity", "outcome")
    )
    for (severity, outcome), n in checks.items():
        outcomes.labels(severity=severity, outcome=outcome).set(n)
    _quality_score(gauge, materialisations)
    _gold_freshness(gauge, instance, timezone)
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
        if m.asset_key == AssetKey([GOLD, "data_quality_daily"]) and m.partition
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


def _gold_freshness(gauge, instance: DagsterInstance, timezone: str) -> None:
    """How far each Gold table's data reaches: the end of its latest materialised day, or the
    time of its latest materialisation for a table rebuilt whole. A timestamp, not an age, so
    Prometheus can tell a table going stale while no run pushes (time() minus it)."""
    reach = gauge(
        "lakehouse_gold_data_end_timestamp_seconds",
        "End of the latest materialised day of each Gold table (or its latest rebuild)",
        ("table",),
    )
    zone = ZoneInfo(timezone)
    for key in instance.get_asset_keys(prefix=[GOLD]):
        days = instance.get_materialized_partitions(key)
        if days:
            end = datetime.combine(date.fromisoformat(max(days)) + timedelta(days=1), time(), zone)
            reach.labels(table=key.path[-1]).set(end.timestamp())
            continue
        latest = instance.get_latest_materialization_event(key)
        if latest is not None:
            reach.labels(table=key.path[-1]).set(latest.timestamp)


def push_run_metrics(instance: DagsterInstance, run: DagsterRun, settings: Settings) -> None:
    """Replace the job's group on the Pushgateway with this run's metrics. An unreachable
    Pushgateway raises one line: the sensor's tick fails and the push is tried again."""
    registry = run_registry(instance, run, settings.timezone)
    url = settings.pushgateway_url
    try:
        push_to_gateway(url, job=run.job_name, registry=registry, timeout=10)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(
            f"the Pushgateway at {url} ({PUSHGATEWAY_ENV}) did not take the metrics of run "
            f"{run.run_id[:8]}: {reason}; start it or unset {PUSHGATEWAY_ENV}"
        ) from None


def metrics_after(status: DagsterRunStatus, outcome: str):
    @run_status_sensor(
        name=f"prometheus_after_{outcome}",
        run_status=status,
        # Every run of the two jobs, also those started from the CLI (`make demo`), which
        # belong to a code location of their own.
        monitor_all_code_locations=True,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Pushes each {' and '.join(METERED_JOBS)} run's metrics after its "
        f"{outcome} to the Pushgateway in ${PUSHGATEWAY_ENV}, when set.",
    )
    def _sensor(context: RunStatusSensorContext):
        run = context.dagster_run
        if run.job_name not in METERED_JOBS:
            return SkipReason(f"{run.job_name} is not metered")
        settings = Settings.from_env()  # read at tick time: point it elsewhere without redeploy
        if not settings.pushgateway_url:
            return SkipReason(f"{PUSHGATEWAY_ENV} is not set; not pushing")
        push_run_metrics(context.instance, run, settings)
        return None

    return _sensor


prometheus_after_success = metrics_after(DagsterRunStatus.SUCCESS, "success")
prometheus_after_failure = metrics_after(DagsterRunStatus.FAILURE, "failure")
