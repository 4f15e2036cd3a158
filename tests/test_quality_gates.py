"""Blocking checks gate Gold per day; schema drift warns or stops Silver; dbt tests are checks;
the runs' metrics reach a real Prometheus through a real Pushgateway, and its alerts fire.

Days are April 2026 and keys start at 2,000,000, so nothing here meets other tests' rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    RunRequest,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)

from lakehouse_assets.automation import prometheus_metrics, quality_after_failure
from lakehouse_assets.automation.metrics import PushFailed, push_run_metrics
from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.definitions import defs
from lakehouse_assets.gold import DIMENSION_KEYS, gold_marts
from lakehouse_assets.gold import quality as report_asset
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets
from spark_jobs.settings import REPO_ROOT, Settings
from spark_jobs.window import DayWindow
from tests.builders import click, wait_for, write_landing, write_source_db
from tools import prometheus
from tools.proctree import TreeSampler
from tools.screenshot import free_port

BAD, GOOD, DRIFT = date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 3)
CUSTOMER, PRODUCT = 2_000_001, 2_000_010
# Runs that assert nothing about the dimensions skip their dbt step (it costs ~20 s a run).
LAKEHOUSE = [*bronze_assets, *silver_assets, gold_marts]
DAILY = [k for a in LAKEHOUSE for k in a.keys if k not in DIMENSION_KEYS]  # all but the dimensions
BRONZE_SILVER = [*bronze_assets, *silver_assets]
REPORT = AssetKey(["gold", "data_quality_daily"])
RESOURCES = {"spark": SparkResource(), "dbt": dbt_resource}


def source_for(day: date, settings, unit_cost=5.00):
    t = f"{day} 08:00:00"
    write_source_db(
        settings,
        {
            "customers": [(CUSTOMER, "Cy", "cy@example.com", "consumer", "east", t, t)],
            "products": [(PRODUCT, "Mug", "home", 10.00, unit_cost, t)],
            "orders": [
                (3_000_000 + day.day, CUSTOMER, PRODUCT, 1, 10.00, "placed", t, f"{day} 21:00:00")
            ],
        },
    )
    write_landing(settings, "inventory", day, [])


def evaluations(result, asset: list[str]):
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey(asset)
    }


@pytest.fixture(scope="module")
def instance():
    with DagsterInstance.ephemeral() as shared:  # check history must outlive each run
        yield shared


@pytest.fixture(scope="module")
def gated(spark, settings, instance):
    """Day BAD has a click without event_id (a `fail` rule); day GOOD is clean."""
    runs = {}
    for day, event_id in ((BAD, None), (GOOD, "g-1")):
        # On the good day the mug costs more than it sells for: a dbt test with severity warn.
        source_for(day, settings, unit_cost=12.00 if day == GOOD else 5.00)
        write_landing(
            settings,
            "clickstream",
            day,
            [click(event_id, "view", PRODUCT, f"{day}T23:30:00Z", user_id=CUSTOMER)],
        )
        # Runs of the main job, as the schedule starts them (their metrics are pushed below).
        runs[day] = defs.resolve_job_def("daily_lakehouse").execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            asset_selection=None if day == GOOD else [*DAILY, REPORT],
        )
        if day == BAD:  # stopped before its report: the failure sensor starts one, run here
            request = after_failure(instance, runs[BAD])
            assert isinstance(request, RunRequest)
            runs[BAD, "report"] = defs.resolve_job_def("quality_report").execute_in_process(
                partition_key=request.tags["dagster/partition"],
                tags={"after_run": request.tags["after_run"]},
                instance=instance,
            )
    return runs


def after_failure(instance, result):
    """The failure sensor's verdict on a finished run, from the run's real final event."""
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = build_run_status_sensor_context(
        sensor_name="quality_after_failure",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=event,
    )
    return quality_after_failure(context)


def gold_rows(spark, day):
    if not spark.catalog.tableExists("lakehouse.gold.fct_orders"):
        return 0  # this module may run alone, with its blocked day first
    return spark.table("lakehouse.gold.fct_orders").where(f"order_date = '{day}'").count()


def test_a_failed_blocking_check_stops_gold_for_that_day_only(spark, gated):
    bad = evaluations(gated[BAD], ["silver", "clickstream"])["event_id_not_null"]
    assert not bad.passed and bad.severity == AssetCheckSeverity.ERROR
    assert bad.metadata["failing_rows"].value == 1
    assert not gated[BAD].asset_materializations_for_node("gold_marts")
    assert gold_rows(spark, BAD) == 0
    # Silver itself was written: valid rows kept, the bad one quarantined, nothing lost.
    assert spark.table("lakehouse.silver.orders").where(f"order_date = '{BAD}'").count() == 1
    quarantined = spark.table("lakehouse.silver.clickstream_quarantine")
    assert quarantined.where(f"_partition_date = '{BAD}'").count() == 1

    good = evaluations(gated[GOOD], ["silver", "clickstream"])["event_id_not_null"]
    assert good.passed
    assert gated[GOOD].success
    assert gold_rows(spark, GOOD) == 1


def test_dbt_tests_are_asset_checks_with_their_severity(gated):
    dims = evaluations(gated[GOOD], ["gold", "dim_products"])
    below_cost = dims["dim_products_priced_at_or_above_cost"]
    assert not below_cost.passed and below_cost.severity == AssetCheckSeverity.WARN
    assert dims["unique_dim_products_product_id"].passed
    assert gated[GOOD].success  # a warning never fails the run


def test_checks_report_counts_and_sample_keys(gated):
    orders = evaluations(gated[GOOD], ["silver", "orders"])
    assert orders["bronze_reconciles"].passed
    assert orders["bronze_reconciles"].metadata["bronze_rows"].value == 1
    assert orders["unique_order_id"].passed
    assert orders["updated_at_fresh"].passed  # the day's last change at 21:00


def test_schema_drift_new_field_warns_removed_field_stops_silver(spark, settings):
    source_for(DRIFT, settings)
    extra = click("d-1", "view", PRODUCT, f"{DRIFT}T23:00:00Z", user_id=CUSTOMER)
    extra["campaign"] = "spring"  # a field nobody announced
    missing = click("d-2", "view", PRODUCT, f"{DRIFT}T23:10:00Z", user_id=CUSTOMER)
    write_landing(settings, "clickstream", DRIFT, [extra])
    first = materialize(
        LAKEHOUSE, selection=DAILY, partition_key=DRIFT.isoformat(), resources=RESOURCES
    )
    checks = evaluations(first, ["silver", "clickstream"])
    assert not checks["no_new_fields"].passed
    assert checks["no_new_fields"].severity == AssetCheckSeverity.WARN
    assert checks["no_new_fields"].metadata["new_fields"].value == {"campaign": 1}
    assert checks["schema"].passed
    assert first.success and gold_rows(spark, DRIFT) == 1
    assert "campaign" not in spark.table("lakehouse.silver.clickstream").columns

    evolved = materialize(
        BRONZE_SILVER,
        partition_key=DRIFT.isoformat(),
        resources=RESOURCES,
        run_config={"ops": {"silver_clickstream": {"config": {"evolve_schema": True}}}},
    )
    assert evolved.success
    table = spark.table("lakehouse.silver.clickstream")
    assert [r.campaign for r in table.where(f"ingest_date = '{DRIFT}'").collect()] == ["spring"]
    assert table.where(f"ingest_date <> '{DRIFT}' and campaign is not null").count() == 0

    del missing["timestamp"]  # a required field removed upstream
    write_landing(settings, "clickstream", DRIFT, [extra, missing])
    second = materialize(
        LAKEHOUSE,
        selection=DAILY,
        partition_key=DRIFT.isoformat(),
        resources=RESOURCES,
        raise_on_error=False,
    )
    schema = evaluations(second, ["silver", "clickstream"])["schema"]
    assert not schema.passed and schema.severity == AssetCheckSeverity.ERROR
    assert not second.success
    # Bronze kept both lines; Silver still holds the first run's row, untouched.
    bronze = spark.table("lakehouse.bronze.clickstream").where(f"_partition_date = '{DRIFT}'")
    assert bronze.count() == 2
    kept = spark.table("lakehouse.silver.clickstream").where(f"ingest_date = '{DRIFT}'")
    assert [r.event_id for r in kept.collect()] == ["d-1"]


def test_the_main_run_scores_its_day_last_and_a_stopped_run_leaves_it_to_the_report_job(
    gated, catalog
):
    def scored(result) -> list[str]:
        return [
            m.partition
            for m in result.get_asset_materialization_events()
            if m.asset_key == AssetKey(["gold", "data_quality_daily"])
        ]

    assert scored(gated[GOOD]) == [GOOD.isoformat()]
    # Selected too, but stopped at the gate: the failure sensor had the report job score it.
    assert scored(gated[BAD]) == []
    assert scored(gated[BAD, "report"]) == [BAD.isoformat()]
    assert gated[BAD, "report"].dagster_run.tags["after_run"] == gated[BAD].run_id
    rows = {
        r["table_name"]: r
        for r in catalog.load_table("gold.data_quality_daily").scan().to_arrow().to_pylist()
        if r["day"] == GOOD
    }
    # It ran after the run's checks, dbt's tests included: none of them is "not run".
    assert rows["gold.dim_products"]["checks_warned"] == 1  # the dbt test with severity warn
    assert rows["silver.clickstream"]["checks_passed"] > 0
    assert all(r["checks_not_run"] == 0 for r in rows.values()), rows


def test_daily_quality_score_reflects_each_days_checks(gated, instance, catalog):
    for day in (BAD, GOOD):
        report = materialize(
            list(defs.assets),
            selection=[AssetKey(["gold", "data_quality_daily"])],
            partition_key=day.isoformat(),
            resources=RESOURCES,
            instance=instance,
        )
        assert report.success
    rows = {
        (r["day"], r["table_name"]): r
        for r in catalog.load_table("gold.data_quality_daily").scan().to_arrow().to_pylist()
        if r["day"] in (BAD, GOOD)
    }
    bad = rows[(BAD, "silver.clickstream")]
    assert bad["checks_failed"] == 1 and bad["rows_quarantined"] == 1
    assert dict(bad["quarantined_by_rule"]) == {"event_id_not_null": 1}
    assert rows[(BAD, "gold.fct_orders")]["checks_not_run"] > 0  # blocked, never ran
    assert rows[(GOOD, "silver.clickstream")]["checks_failed"] == 0
    assert rows[(GOOD, "gold.dim_products")]["checks_warned"] == 1
    assert rows[(BAD, "all")]["score"] < rows[(GOOD, "all")]["score"] <= 100
    # Rerunning a day replaces exactly that day's rows.
    assert materialize(
        list(defs.assets),
        selection=[AssetKey(["gold", "data_quality_daily"])],
        partition_key=BAD.isoformat(),
        resources=RESOURCES,
        instance=instance,
    ).success
    again = catalog.load_table("gold.data_quality_daily").scan().to_arrow().to_pylist()
    assert sorted((r["day"], r["table_name"]) for r in again if r["day"] in (BAD, GOOD)) == sorted(
        rows
    )


def test_the_report_reads_as_much_check_history_as_the_window_needs(gated, instance, monkeypatch):
    # A year's backfill in one run records 365 results per check: more than one page of the
    # history. One result per page here, for the two days' runs.
    keys = sorted({k for a in (*silver_assets, gold_marts) for k in a.check_keys}, key=str)
    window = DayWindow(BAD, GOOD + timedelta(days=1))
    every_page = list(report_asset.check_outcomes(instance, keys, window))
    monkeypatch.setattr(report_asset, "HISTORY", 1)
    assert list(report_asset.check_outcomes(instance, keys, window)) == every_page
    by_day = Counter((o.day, o.status) for o in every_page)
    assert by_day[BAD.isoformat(), "failed"] == 1 and by_day[GOOD.isoformat(), "passed"] > 10


def test_the_quality_report_run_starts_no_jvm(gated, catalog, tmp_path):
    # As the daemon launches it: a run process of its own, here from the CLI. An instance of
    # its own too, so no check ran there; the quarantine counts are the tables' own.
    home = tmp_path / "dagster"
    home.mkdir()
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "lakehouse_assets.definitions", "--select", "gold/data_quality_daily"]
    with TreeSampler(os.getpid()) as tree:
        done = subprocess.run(
            [*command, "--partition", BAD.isoformat()],
            cwd=REPO_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert tree.jvms_started == set()  # pyiceberg and polars: no Spark
    rows = catalog.load_table("gold.data_quality_daily").scan().to_arrow().to_pylist()
    bad = next(r for r in rows if r["day"] == BAD and r["table_name"] == "silver.clickstream")
    assert bad["rows_quarantined"] == 1 and bad["checks_failed"] == 0  # nothing ran there


# ------------------------------------------------------------------ Prometheus
def test_the_alert_rules_pass_promtool():
    done = prometheus.check_rules()
    assert done.returncode == 0, done.stdout + done.stderr


def pushed(instance, run_id: str) -> None:
    """One run pushed as the sensor pushes it, for a run that is not its job's newest."""
    push_run_metrics(instance, instance.get_run_by_id(run_id), Settings.from_env())


def tick(instance, cursor: str | None = None):
    """The metrics sensor's tick, evaluated here on the instance's real runs: the daemon that
    would tick it is what this test leaves out (tests/test_cluster.py has it)."""
    context = build_sensor_context(instance=instance, cursor=cursor)
    return prometheus_metrics(context), context.cursor


def firing(url: str) -> set[tuple[str, str]]:
    """(alert, its day or table) for every alert Prometheus has firing."""
    return {
        (a["labels"]["alertname"], a["labels"].get("partition") or a["labels"].get("table", ""))
        for a in prometheus.active_alerts(url)
        if a["state"] == "firing"
    }


def score_of(result, day: date) -> float:
    """The day's score as the run that scored it recorded it (the table's row may since have
    been rewritten by another test's report)."""
    [score] = [
        event.materialization.metadata["score"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == REPORT and event.partition == day.isoformat()
    ]
    return score


def test_runs_push_metrics_prometheus_scrapes_and_alerts_fire_for_the_bad_day_only(
    gated, instance, catalog, tmp_path, monkeypatch
):
    main = 'job="daily_lakehouse"'
    with prometheus.serving(tmp_path) as (gateway, url):
        monkeypatch.setenv("LAKEHOUSE_PUSHGATEWAY_URL", gateway)
        # The bad day: its main-job run failed at the gate, then its report ran. Pushed here
        # by hand, as the sensor pushed each when it ended, before the good day's run.
        assert not gated[BAD].success
        pushed(instance, gated[BAD].run_id)
        bad_report = gated[BAD, "report"].run_id  # the run the failure sensor started
        pushed(instance, bad_report)
        ran = f"lakehouse_run_success{{{main}}}"
        assert wait_for(
            "the failed run's metrics", lambda: prometheus.by_label(url, ran, "partition")
        ) == {str(BAD): 0.0}
        silver = prometheus.by_label(
            url, f'lakehouse_rows_written{{{main},layer="silver"}}', "table"
        )
        assert silver["orders"] == 1 and silver["clickstream"] == 0
        assert silver["clickstream_quarantine"] == 1
        assert (
            prometheus.by_label(url, f'lakehouse_rows_written{{{main},layer="gold"}}', "table")
            == {}
        )  # gated
        assert prometheus.by_label(url, "lakehouse_rows_quarantined_by_rule", "rule") == {
            "event_id_not_null": 1
        }
        judged = f'lakehouse_silver_rows_judged{{table="clickstream",partition="{BAD}"}}'
        assert prometheus.by_label(url, judged, "table") == {"clickstream": 1}
        failed = prometheus.by_label(
            url, f'lakehouse_asset_checks{{{main},outcome="failed"}}', "severity"
        )
        evaluations = gated[BAD].get_asset_check_evaluations()
        assert failed == Counter(e.severity.value for e in evaluations if not e.passed)
        assert failed["ERROR"] == 1  # event_id_not_null
        passed = prometheus.by_label(
            url, f'lakehouse_asset_checks{{{main},outcome="passed"}}', "severity"
        )
        assert sum(passed.values()) == sum(e.passed for e in evaluations) > 10
        scores = {BAD: score_of(gated[BAD, "report"], BAD), GOOD: score_of(gated[GOOD], GOOD)}
        score = wait_for(
            "the report's score",
            lambda: prometheus.by_label(url, "lakehouse_quality_score_ratio", "partition"),
        )
        assert score == {str(BAD): pytest.approx(scores[BAD] / 100)}
        expected = {("LakehouseDailyRunFailed", str(BAD)), ("LakehouseQuarantineHigh", str(BAD))}
        alerts = wait_for("the bad day's alerts", lambda: expected <= firing(url) and firing(url))
        # (The bad day scores 98: one failed check of ~50, above the rule's 95 %.)
        assert (("LakehouseQualityScoreLow", str(BAD)) in alerts) == (scores[BAD] < 95)
        # Through PromQL too, as a dashboard reads it.
        query = 'ALERTS{alertname="LakehouseDailyRunFailed",alertstate="firing"}'
        assert prometheus.by_label(url, query, "partition") == {str(BAD): 1.0}

        # The sensor pushes each job's newest finished run, once, in the order they ended:
        # the bad day's report, then the good day's run, which replaces the bad one on the
        # Pushgateway. That run scored its day itself, so its push also clears the bad day's
        # report, which ended before it: its alerts resolve.
        assert gated[GOOD].success
        result, cursor = tick(instance)
        assert result.skip_message == (
            f"pushed quality_report run {bad_report[:8]}, "
            f"daily_lakehouse run {gated[GOOD].run_id[:8]}"
        )
        assert tick(instance, cursor)[0].skip_message == "no run finished since the last push"
        wait_for(
            "the good run's metrics",
            lambda: prometheus.by_label(url, ran, "partition") == {str(GOOD): 1.0},
        )
        quiet = {
            "LakehouseDailyRunFailed",
            "LakehouseQuarantineHigh",
            "LakehouseQualityScoreLow",
            "LakehouseGoldStale",  # each table's newest day was written minutes ago
        }
        wait_for(
            "the bad day's alerts to resolve",
            lambda: not {name for name, _ in firing(url)} & quiet,
        )
        gold = prometheus.by_label(url, f'lakehouse_rows_written{{{main},layer="gold"}}', "table")
        # A dimension is rebuilt whole: its rows written are the table's (products of other
        # test files on this worker's lakehouse included), a day's mart only the day's row.
        dim_products = len(catalog.load_table("gold.dim_products").scan().to_arrow())
        assert gold["fct_orders"] == 1 and gold["dim_products"] == dim_products >= 1
        score = prometheus.by_label(url, "lakehouse_quality_score_ratio", "partition")
        assert score == {str(GOOD): pytest.approx(scores[GOOD] / 100)}


def test_an_unset_pushgateway_pushes_nothing_and_an_unreachable_one_fails_in_one_line(
    gated, instance, monkeypatch
):
    monkeypatch.delenv("LAKEHOUSE_PUSHGATEWAY_URL", raising=False)
    skipped, _ = tick(instance)
    assert "LAKEHOUSE_PUSHGATEWAY_URL is not set" in skipped.skip_message
    monkeypatch.setenv("LAKEHOUSE_PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    context = build_sensor_context(instance=instance, cursor=None)
    with pytest.raises(PushFailed) as failed:
        prometheus_metrics(context)
    message = str(failed.value)
    assert "did not take the metrics" in message and "\n" not in message
    assert context.cursor is None  # nothing pushed, nothing marked: the next tick tries again
