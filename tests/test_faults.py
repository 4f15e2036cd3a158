"""Operated like production: runs killed with kill -9, runs started together, invalid ranges,
misconfiguration. Each must end in a clear state: nothing lost, nothing stuck, one-line errors.

The daemon, the code server, the run workers and the CLI processes are real processes on this
machine, with the instance configuration `make setup` installs (deployment/dagster.yaml).
Days are February 2026, used by no other module.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from typing import IO

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    materialize,
)

from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.definitions import defs
from lakehouse_assets.resources import SparkResource
from spark_jobs.session import prepare, write_spark_defaults
from spark_jobs.settings import REPO_ROOT, LakehouseSetupError, Settings
from tests.builders import empty_lakehouse, wait_for, webhook, write_source_db
from tools.generate import generate

DAGSTER = [sys.executable, "-m", "dagster"]
CONCURRENT_DAYS = ("2026-02-02", "2026-02-03", "2026-02-04")
EMPTY_DAY = "2026-02-20"  # no data: the run under the daemon is killed long before it matters


@pytest.fixture(scope="module", autouse=True)
def leave_nothing_behind(spark):
    yield
    empty_lakehouse(spark)  # the modules after this one count customers and days of their own


def instance_home(tmp_path: Path) -> Path:
    """A Dagster home set up as `make setup` does: the deployment's config, storage created."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deployment" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    subprocess.run([*DAGSTER, "instance", "migrate"], env=env, check=True, capture_output=True)
    return home


def start_daemon(env: dict[str, str], log: IO[str]) -> subprocess.Popen:
    """`dagster-daemon run` on the workspace, as `make dev` starts it, in a session of its own:
    killing its process group ends its code server and run workers with it."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# ------------------------------------------------------------------ kill -9 under the daemon
def started_pid(instance, run_id: str):
    """The pid executing the run, once its first step has started."""
    from tools.launcher import worker_start

    steps = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
    started = worker_start(instance, run_id) if steps else None
    return started[0] if started else None


def marked_failed(instance, run_id: str, what: str) -> str:
    def failed():
        return instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE

    wait_for(f"{what} to be marked failed", failed, timeout=120)
    events = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    return events[-1].event_log_entry.message


def reads_failures(instance) -> bool:
    """The daemon's event-log consumer (which retries failed runs) has set where it reads
    run failures from (its cursor, under the key Dagster's consumer gives it)."""
    key = f"EVENT_LOG_CONSUMER_CURSOR-{DagsterEventType.RUN_FAILURE.value}"
    return bool(instance.daemon_cursor_storage.get_cursor_values({key}))


def retried(instance, run_id: str, what: str) -> None:
    retries = wait_for(
        f"the daemon's retry of {what}",
        lambda: instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id})),
        timeout=120,
    )
    assert retries[0].tags["dagster/retry_number"] == "1"


@pytest.fixture
def slack():
    """A stand-in for Slack's incoming webhook (not reachable here), on loopback."""
    with webhook() as hook:
        yield hook


def test_runs_killed_with_kill_9_are_marked_failed_and_alerted_never_stuck(
    tmp_path, monkeypatch, settings, slack
):
    home = instance_home(tmp_path)
    if not settings.source_db_path.exists():  # this test may run alone: an empty source
        write_source_db(settings, {})
    hook_url, received = slack
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),  # as `make dev` sets it: the daemon loads the launcher
        "LAKEHOUSE_SLACK_WEBHOOK_URL": hook_url,
        # An empty landing zone: the worker's own holds other test files' days, which the
        # arrival sensors would queue runs for, ahead of the run under test.
        "LAKEHOUSE_LANDING": str(tmp_path / "landing"),
    }
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = start_daemon(env, daemon_log)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    job = ["-w", "workspace.yaml", "-j", "daily_lakehouse"]
    tags = ["--tags", json.dumps({"dagster/partition": EMPTY_DAY})]
    cli_log = (tmp_path / "cli-run.log").open("w")
    try:
        with DagsterInstance.get() as instance:
            # The daemon retries a run whose failure it reads after its first look at the event
            # log: it starts reading from the newest event there. Launched before that look (a
            # slow start), a run killed at once was never retried (seen in CI).
            wait_for("the daemon's first read of the event log", lambda: reads_failures(
                instance), timeout=120)  # fmt: skip
            # 1. A run the daemon launched: its worker is killed mid-step.
            subprocess.run(
                [*DAGSTER, "job", "launch", *job, *tags],
                cwd=REPO_ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            # (The sensors that are on by default may have queued runs of their own.)
            [launched] = instance.get_runs(RunsFilter(job_name="daily_lakehouse"))
            pid = wait_for("the launched run's first step", lambda: started_pid(
                instance, launched.run_id), timeout=240)  # fmt: skip
            os.kill(pid, signal.SIGKILL)
            marked_failed(instance, launched.run_id, "the launched run")
            retried(instance, launched.run_id, "the launched run")

            # 2. A run started from the CLI, the path the README gives: no code server
            # watches it, so only run monitoring (the launcher's health check) can see it die.
            # It writes a lakehouse of its own (same Dagster instance), so it does not queue
            # behind the daemon's retry of the first run for the embedded catalog's lock.
            cli_home = tmp_path / "cli-lakehouse"
            write_source_db(Settings.from_env({**env, "LAKEHOUSE_HOME": str(cli_home)}), {})
            cli = subprocess.Popen(
                [*DAGSTER, "job", "execute", "-m", "lakehouse_assets.definitions", *job[2:], *tags],
                cwd=REPO_ROOT,
                env={**env, "LAKEHOUSE_HOME": str(cli_home)},
                stdout=cli_log,
                stderr=subprocess.STDOUT,
            )
            cli_run = wait_for(
                "the CLI run",
                lambda: [r for r in instance.get_runs(RunsFilter(job_name="daily_lakehouse"))
                         if r.tags.get("dagster/partition")
                         and r.run_id != launched.run_id and "dagster/parent_run_id" not in r.tags],
            timeout=120)[0]  # fmt: skip
            wait_for("the CLI run's first step", lambda: started_pid(
                instance, cli_run.run_id), timeout=240)  # fmt: skip
            cli.kill()
            cli.wait(timeout=30)
            message = marked_failed(instance, cli_run.run_id, "the CLI run")
            assert "is gone" in message  # what the launcher's health check found
            # (The daemon retries what it launched; a CLI run has no code location to relaunch
            # from, so its retry is the operator's: the alert below says which days.)

            def alerted():
                runs = {p["run_id"] for p in received}
                return {launched.run_id, cli_run.run_id} <= runs

            wait_for("both failure alerts", alerted, timeout=120)
        payload = next(p for p in received if p["run_id"] == cli_run.run_id)
        assert payload["partition"] == EMPTY_DAY and "is gone" in payload["error"]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
        daemon_log.close()
        cli_log.close()


# ------------------------------------------------------------------ cancelled from the UI
CANCELLED_DAY = "2026-02-21"


def jvms_of(lakehouse: Path) -> list[int]:
    """The java processes started for this lakehouse (their environment names its home)."""
    ours, pids = f"LAKEHOUSE_HOME={lakehouse}".encode(), []
    for proc in Path("/proc").iterdir():
        try:
            java = proc.name.isdigit() and (proc / "comm").read_text().strip() == "java"
            if java and ours in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return pids


def ticked(instance, sensor: str) -> bool:
    """Whether the daemon has evaluated ``sensor`` at least once."""
    return any(
        instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        for state in instance.all_instigator_state()
        if state.instigator_name == sensor
    )


@pytest.mark.parametrize("layer", ["bronze", "silver"])
def test_a_run_cancelled_mid_step_ends_cancelled_with_its_jvm_and_its_day_is_scored(
    tmp_path, monkeypatch, layer
):
    """Cancel, as the UI's button does (the coordinator has the launcher ask the run's code
    server), a run the daemon launched, in its first step of ``layer``: it ends CANCELED with
    no step started after the cancel, not even a retry of the cancelled one (Bronze's sources
    are retried on their errors, never on a cancel); its worker and JVM end with it (nothing
    holds the catalog), and the daemon scores the day after it (``quality_after_canceled``)."""
    from lakehouse_assets.resources.catalog import open_catalog
    from tools.launcher import worker_alive, worker_start

    home = instance_home(tmp_path)
    lakehouse = tmp_path / "lakehouse"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),  # as `make dev` sets it: the daemon loads the launcher
        "LAKEHOUSE_HOME": str(lakehouse),  # its own: the daemon's runs leave the tests' alone
    }
    own = Settings.from_env(env)
    write_source_db(own, {})  # an empty day: the cancel, not the data, is under test
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = start_daemon(env, daemon_log)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    job = ["-w", "workspace.yaml", "-j", "daily_lakehouse"]
    tags = ["--tags", json.dumps({"dagster/partition": CANCELLED_DAY})]
    try:
        with DagsterInstance.get() as instance:
            # A run-status sensor's first tick only marks where it starts reading: it ticks
            # before the run starts, or it would not see the run end.
            wait_for("a tick of quality_after_canceled", lambda: ticked(
                instance, "quality_after_canceled"), timeout=120)  # fmt: skip
            subprocess.run([*DAGSTER, "job", "launch", *job, *tags], cwd=REPO_ROOT, env=env,
                           check=True, capture_output=True)  # fmt: skip
            [run] = instance.get_runs(RunsFilter(job_name="daily_lakehouse"))

            def started():
                records = instance.get_records_for_run(
                    run.run_id, of_type=DagsterEventType.STEP_START
                ).records
                return [r.event_log_entry.step_key for r in records]

            def in_layer():
                return any(step.startswith(layer) for step in started())

            wait_for(f"the run's first {layer} step", in_layer, timeout=300, interval=0.2)
            if layer == "bronze":  # its JVM: the first step starts it
                wait_for("the run's JVM", lambda: jvms_of(lakehouse), timeout=120, interval=0.2)
            runs_jvm = set(jvms_of(lakehouse))  # what must end with the run
            assert runs_jvm
            pid, reported_at = worker_start(instance, run.run_id)
            steps_before = started()
            instance.run_coordinator.cancel_run(run.run_id)  # what the UI's button calls

            def ended():
                return instance.get_run_by_id(run.run_id).status in (
                    DagsterRunStatus.CANCELED,
                    DagsterRunStatus.FAILURE,
                    DagsterRunStatus.SUCCESS,
                )

            wait_for("the run to end", ended, timeout=120)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
            assert started() == steps_before  # nothing after the cancel: no retry, no next step
            retries = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY
            ).records
            assert retries == []
            wait_for("its worker to exit", lambda: not worker_alive(pid, reported_at), timeout=60)
            wait_for("its JVM to exit", lambda: not runs_jvm & set(jvms_of(lakehouse)), timeout=60)
            # Scored after it, by the daemon's sensor: a report run for the same day.
            after = RunsFilter(job_name="quality_report", tags={"after_run": run.run_id})

            def scored():
                runs = instance.get_runs(after)
                assert all(r.status != DagsterRunStatus.FAILURE for r in runs), "report failed"
                return [r for r in runs if r.status == DagsterRunStatus.SUCCESS]

            [report] = wait_for("the report after the cancel", scored, timeout=240)
            assert report.tags["dagster/partition"] == CANCELLED_DAY
        scores = open_catalog(own).load_table("gold.data_quality_daily").scan().to_arrow()
        assert CANCELLED_DAY in {d.isoformat() for d in scores.column("day").to_pylist()}
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
        daemon_log.close()


class Interrupted(BaseException):
    """What Dagster's handler raises in a step: ``DagsterExecutionInterruptedError``, a
    ``BaseException`` too."""


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_a_spark_action_cancels_it_and_leaves_the_session_working(
    spark, signo, caplog
):
    """A run cancelled in a long Spark action (the UI's cancel: SIGINT to the run worker; or
    SIGTERM, a stopped container): the action's jobs are cancelled at once, the load's
    clean-up on the way out gets true answers from Spark, and the interrupt is what the step
    raises. Before, the interrupt left py4j's connection with the action's answer pending:
    the clean-up waited for the action to end (9.4 s into a 1 M-event day's
    ``silver_clickstream``), then read that answer as its own, and each later call another's
    ("py4j does not exist in the JVM")."""
    from spark_jobs.session import releases_checkpoints

    answers, cancelled, watchdog = {}, threading.Event(), threading.Event()

    @releases_checkpoints
    def load(session):
        try:  # minutes of work on two cores: only a cancel ends it within the test
            session.range(0, 10**11, numPartitions=4).selectExpr("sum(hash(id))").collect()
        finally:
            answers["count"] = session.range(7).count()  # a clean-up that asks Spark

    def interrupt_then_guard():
        tracker = spark.sparkContext.statusTracker()
        wait_for("the action's job", tracker.getActiveJobsIds, timeout=60, interval=0.1)
        os.kill(os.getpid(), signo)
        if not cancelled.wait(60):  # never left running: the next tests share this session
            watchdog.set()
            spark.sparkContext.cancelAllJobs()

    def raise_interrupted(signo, frame):
        raise Interrupted

    previous = signal.signal(signo, raise_interrupted)  # as Dagster's, for both signals
    guard = threading.Thread(target=interrupt_then_guard, daemon=True)
    try:
        guard.start()
        with pytest.raises(Interrupted):
            load(spark)
    finally:
        signal.signal(signo, previous)
        cancelled.set()
        guard.join(timeout=90)
    assert not watchdog.is_set(), "the action ran on until the test's own cancel"
    assert answers == {"count": 7}
    tracker = spark.sparkContext.statusTracker()
    wait_for("the action's job to end", lambda: not tracker.getActiveJobsIds(), interval=0.1)
    assert spark.range(5).count() == 5  # and the session answers the next caller truly
    assert signal.getsignal(signo) is previous
    # py4j's report of the call cancelled on purpose is not an ERROR in the step's log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# ------------------------------------------------------------------ runs started together
def test_three_runs_started_at_once_all_succeed_and_lose_nothing(tmp_path, settings, spark):
    home = instance_home(tmp_path)
    manifest = generate(settings, date(2026, 2, 2), len(CONCURRENT_DAYS), "tiny", seed=5)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    select = "key:bronze/*"  # every layer commits the same way; Bronze keeps the test short
    logs = [(tmp_path / f"run-{day}.log").open("w") for day in CONCURRENT_DAYS]
    runs = [
        subprocess.Popen(
            [*DAGSTER, "asset", "materialize", "-m", "lakehouse_assets.definitions"]
            + ["--select", select, "--partition", day],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for day, log in zip(CONCURRENT_DAYS, logs, strict=True)
    ]
    codes = [run.wait(timeout=900) for run in runs]
    for log in logs:
        log.close()
    tails = {
        day: (tmp_path / f"run-{day}.log").read_text()[-2000:]
        for day, code in zip(CONCURRENT_DAYS, codes, strict=True)
        if code
    }
    assert codes == [0, 0, 0], tails
    # Every source row and every landed line reached Bronze: none was lost to the collision.
    with sqlite3.connect(settings.source_db_path) as con:
        source_orders = {r[0] for r in con.execute("SELECT order_id FROM orders")}
    window = f"between '{CONCURRENT_DAYS[0]}' and '{CONCURRENT_DAYS[-1]}'"
    bronze = spark.table("lakehouse.bronze.orders").where(f"_partition_date {window}")
    assert {r.order_id for r in bronze.select("order_id").collect()} == source_orders
    lines = spark.table("lakehouse.bronze.clickstream").where(f"_partition_date {window}")
    per_day = {str(r[0]): r[1] for r in lines.groupBy("_partition_date").count().collect()}
    assert per_day == {d: c["clickstream"]["lines"] for d, c in manifest.per_day.items()}


# ------------------------------------------------------------------ invalid partition ranges
@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("2026-02-10", "2026-02-08", "ends before it starts"),
        ("2025-12-30", "2026-01-02", "'2025-12-30' is not a daily partition"),
    ],
)
def test_an_invalid_range_fails_once_before_any_write(start, end, why):
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    job = defs.resolve_job_def("daily_lakehouse")
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), tags=tags, raise_on_error=False
    )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failures and all(why in e.step_failure_data.error.message for e in failures)
    assert all("\n" not in e.step_failure_data.user_failure_data.description for e in failures)
    retried = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert retried == []  # no retry can make a range valid
    assert not result.asset_materializations_for_node("bronze__orders")


# ------------------------------------------------------------------ misconfiguration
def failure_of(result) -> str:
    """The run's one failure message, as Dagster shows it."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            return event.step_failure_data.user_failure_data.description
        if event.event_type == DagsterEventType.RESOURCE_INIT_FAILURE:
            message = event.event_specific_data.error.message.strip()
            return message.removeprefix("dagster._core.definitions.events.Failure: ")
    raise AssertionError("the run did not fail")


def test_a_missing_source_database_fails_in_one_line_and_creates_nothing(
    tmp_path, monkeypatch, spark
):
    missing = tmp_path / "nowhere" / "source.db"
    monkeypatch.setenv("LAKEHOUSE_SOURCE_URL", f"jdbc:sqlite:{missing}")
    customers = next(a for a in bronze_assets if a.key.path == ["bronze", "customers"])
    result = materialize(
        [customers],
        partition_key="2026-02-11",
        resources={"spark": SparkResource()},
        raise_on_error=False,
    )
    message = failure_of(result)
    assert "does not exist" in message and "make demo" in message and "\n" not in message
    assert not missing.exists() and not missing.parent.exists()  # no 0-byte file left behind
    retried = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert retried == []


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LAKEHOUSE_CATALOG_URI", "thrift://metastore:9083", "is not supported"),
        ("LAKEHOUSE_CATALOG_URI", "jdbc:sqlite:/nonexistent/lake/catalog.db", "does not exist"),
        ("PATH", "/nonexistent", "Java not found"),
    ],
)
def test_misconfiguration_fails_before_any_step_in_one_line(monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    customers = next(a for a in bronze_assets if a.key.path == ["bronze", "customers"])
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [customers],
            partition_key="2026-02-11",
            resources={"spark": SparkResource()},
            instance=instance,
            raise_on_error=False,
        )
        # The daemon must not retry it either: still misconfigured a minute later.
        assert instance.get_run_by_id(result.run_id).tags["dagster/max_retries"] == "0"
    message = failure_of(result)
    assert says in message and "\n" not in message
    assert not result.get_step_success_events()
    assert not Path("/nonexistent").exists()  # nothing was created where the typo points


def test_an_embedded_catalog_elsewhere_is_not_created_silently(settings, tmp_path):
    typo = settings.with_overrides(catalog_uri=f"jdbc:sqlite:{tmp_path}/typo/catalog.db")
    with pytest.raises(LakehouseSetupError, match="does not exist"):
        prepare(typo)
    assert not (tmp_path / "typo").exists()


def test_catalog_credentials_are_readable_by_their_owner_only(settings):
    canary = "canary-7f3a-password"
    secret = settings.with_overrides(catalog_user="lake", catalog_password=canary)
    conf_dir = write_spark_defaults(secret)
    conf = conf_dir / "spark-defaults.conf"
    assert canary in conf.read_text()  # dbt's and spark-sql's Spark need it...
    assert conf.stat().st_mode & 0o077 == 0  # ...and no one else may read it
    assert conf_dir.stat().st_mode & 0o077 == 0
    # No other file the lakehouse wrote (logs, conf, scratch) carries it where others can read.
    readable = [
        path
        for path in settings.home.rglob("*")
        if path.is_file()
        and path.stat().st_size < 10_000_000
        and path.stat().st_mode & 0o044
        and canary.encode() in path.read_bytes()
    ]
    assert readable == []
    write_spark_defaults(settings)  # leave the real configuration behind


# ------------------------------------------------------------------ rows that used to vanish
def test_an_order_without_updated_at_is_extracted_once_and_quarantined_by_name(settings, spark):
    from lakehouse_assets.silver import silver_assets

    t = "2026-02-12 08:00:00"
    write_source_db(
        settings,
        {
            "customers": [(4_000_001, "Nil", "nil@example.com", "consumer", "east", t, t)],
            "products": [(4_000_010, "Pan", "home", 20.00, 9.00, t)],
            "orders": [
                (4_100_001, 4_000_001, 4_000_010, 1, 20.00, "placed", t, t),
                (4_100_002, 4_000_001, 4_000_010, 1, 20.00, "placed", t, None),  # no updated_at
            ],
        },
    )
    wanted = {("bronze", t) for t in ("customers", "products", "orders")}
    assets = [a for a in bronze_assets if tuple(a.key.path) in wanted]
    assets += [a for a in silver_assets if a.node_def.name in {"silver_customers",
                                                                 "silver_products",
                                                                 "silver_orders"}]  # fmt: skip

    def run():
        result = materialize(
            assets, partition_key="2026-02-12", resources={"spark": SparkResource()}
        )
        # The worker's lakehouse also holds other test files' orders.
        mine = "order_id between 4100001 and 4199999"
        bronze = spark.table("lakehouse.bronze.orders").where(mine).collect()
        held = (
            spark.table("lakehouse.silver.orders_quarantine")
            .where("record_key = '4100002'")
            .collect()
        )
        return result, bronze, held

    first, bronze, held = run()
    assert sorted(r.order_id for r in bronze) == [4_100_001, 4_100_002]
    assert [(str(r._partition_date), r.rules) for r in held] == [
        ("2026-02-12", ["updated_at_not_null"])
    ]
    meta = first.asset_materializations_for_node("bronze__orders")[0].metadata
    assert meta["rows_without_change_time"].value == 1
    [coverage] = [
        e
        for e in first.get_asset_check_evaluations()
        if e.check_name == "source_rows_extracted" and e.asset_key.path == ["bronze", "orders"]
    ]
    assert coverage.passed and coverage.metadata["failing_rows"].value == 0
    _, bronze_again, held_again = run()  # a rerun takes it again, once, on the same day
    assert len(bronze_again) == 2 and len(held_again) == 1


STARTS_SPARK = """
import sys
from spark_jobs.session import build_session
from spark_jobs.settings import Settings

try:
    build_session(Settings.from_env(), app_name="interrupted-start")
except KeyboardInterrupt:
    sys.exit(130)
"""


def _signals_as_a_run_worker_has_them() -> None:
    """SIGINT and SIGTERM at their defaults in a child about to exec (Python then raises
    KeyboardInterrupt on SIGINT), not as the suite's own process inherited them."""
    for signo in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signo, signal.SIG_DFL)


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_while_the_jvm_starts_is_delivered_and_leaves_no_jvm(tmp_path, signo):
    """A run cancelled (SIGINT) or stopped (SIGTERM) in its first seconds, while PySpark
    waits for the JVM it started to open its gateway: the interrupt is delivered once the
    session is up, and the JVM ends with the process. Before, PySpark removed the folder the
    JVM was to write its gateway's port to, and the JVM ran on for ever, with nobody to talk
    to (seen after a cancel 0.3 s into a run's first step).

    Each JVM of the start (spark-submit's launcher, then the driver) holds at its first step
    until the test lets it go (HotSpot's PauseAtStartup), so the signal lands while the JVM
    starts, however loaded the box: in CI, watching for the JVM from outside once saw it only
    after the session was up and the child gone, and the signal was never sent. The child
    handles both signals whatever launched the suite: a shell without job control starts
    its background commands with SIGINT ignored, and a child inherits that (so a SIGINT was
    rightly ignored, in a CI started from one)."""
    lakehouse, paused = tmp_path / "lakehouse", tmp_path / "jvm.paused"
    hold = f"-XX:+UnlockDiagnosticVMOptions -XX:+PauseAtStartup -XX:PauseAtStartupFile={paused}"
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(lakehouse),
        "PYTHONPATH": str(REPO_ROOT),
        "JDK_JAVA_OPTIONS": hold,
    }
    with (tmp_path / "child.log").open("w") as log:
        child = subprocess.Popen([sys.executable, "-c", STARTS_SPARK], cwd=REPO_ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=_signals_as_a_run_worker_has_them)  # fmt: skip
    try:
        wait_for("a JVM held in its start", paused.exists, timeout=120, interval=0.02)
        assert child.poll() is None and jvms_of(lakehouse)
        child.send_signal(signo)

        def started() -> bool:  # every JVM of the start let go, until the child has ended
            paused.unlink(missing_ok=True)
            return child.poll() is not None

        wait_for("the child to end", started, timeout=120, interval=0.05)
        interrupted = 130 if signo == signal.SIGINT else -signo  # not lost, not swallowed
        assert child.returncode == interrupted, (tmp_path / "child.log").read_text()
        wait_for("its JVM to end", lambda: not jvms_of(lakehouse), timeout=60)
    finally:
        child.kill()
        for pid in jvms_of(lakehouse):  # the next tests must not share the box with it
            os.kill(pid, signal.SIGKILL)


# A fresh JVM (dbt's) writing from several threads while another JVM (the run's) has the
# catalog open: what `dbt build` with threads does on the embedded catalog.
WRITERS = """
import sys, threading
from spark_jobs.session import build_session
from spark_jobs.settings import Settings

spark = build_session(Settings.from_env(), app_name="writers")
failed = []

def write(thread):
    for i in range(3):
        name = f"lakehouse.gold.race_{thread}_{i}"
        try:
            spark.sql(f"CREATE OR REPLACE TABLE {name} USING iceberg AS SELECT id FROM range(7)")
        except Exception as exc:
            failed.append(f"{name}: {str(exc).splitlines()[0]}")

threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_threads_of_a_fresh_jvm_commit_while_another_jvm_holds_the_sqlite_catalog(spark):
    """Iceberg's JDBC pool of two connections on SQLite: a connection that had read before its
    sibling committed could not write (SQLITE_BUSY_SNAPSHOT, no busy wait), so a dbt build
    with threads lost model commits at random. One connection per JVM serialises them."""
    spark.sql("CREATE NAMESPACE IF NOT EXISTS lakehouse.gold")
    spark.sql("SHOW TABLES IN lakehouse.gold").collect()  # this JVM holds the catalog open
    for _attempt in range(2):  # before the fix, two runs in three lost at least one commit
        done = subprocess.run(
            [sys.executable, "-c", WRITERS], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    names = [f"race_{t}_{i}" for t in range(4) for i in range(3)]
    counts = {n: spark.table(f"lakehouse.gold.{n}").count() for n in names}
    assert counts == dict.fromkeys(names, 7)
    for name in names:
        spark.sql(f"DROP TABLE lakehouse.gold.{name} PURGE")
