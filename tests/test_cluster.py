"""The production stack on real parts, through Dagster's daemon: `make cluster-up`'s PostgreSQL
(catalog, source and Dagster's storage), a Spark standalone master with two workers, the Spark
Thrift server on it (dbt's Gold models), moto's S3 server (the landing bucket), and the Dagster
webserver and daemon. Every server is a real process on loopback, started and stopped here.

It runs in its own pytest process (`make test-cluster`, from `.ci/run` after `make test`): the
stack takes the machine's two cores while it is up. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakehouse_assets.gold.assets import gold_marts
from lakehouse_assets.resources.catalog import open_catalog
from spark_jobs.settings import REPO_ROOT, Settings
from tests.builders import wait_for, webhook
from tools import cluster, prometheus
from tools.cluster_demo import launch, reexecute, set_sensors, step_errors, wait, where_it_ran
from tools.generate import generate
from tools.screenshot import free_port

# Its own pytest process: `make test` leaves these out (-m "not cluster").
pytestmark = pytest.mark.cluster

DAY = date(2026, 6, 10)
DAYS = 3  # one run over the three days: a single-run backfill on the cluster
LAST = DAY + timedelta(days=DAYS - 1)
SCALE = "tiny"
EXECUTOR_WAIT_S = 30
WORKER_CLEANUP_S = 5
SENSORS = ["clickstream_landed", "inventory_landed"]


@pytest.fixture(scope="module")
def slack():
    """A stand-in for Slack's incoming webhook (Slack itself is not reachable here): an HTTP
    server on loopback that keeps what the stack's daemon posts."""
    with webhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def stack(slack, request):
    # Not under pytest's 0700 tmp dir: the postgres user must reach its data folder.
    base = Path(tempfile.mkdtemp(prefix="lakehouse-cluster-"))
    base.chmod(0o755)
    ports = {
        f"CLUSTER_{name}_PORT": str(free_port())
        for name in (
            "PG",
            "SPARK",
            "SPARK_UI",
            "THRIFT",
            "S3",
            "DAGSTER",
            "PUSHGATEWAY",
            "PROMETHEUS",
            "SPARK_WORKER_1_UI",  # not the master's port + 11: that one nobody checked
            "SPARK_WORKER_2_UI",
        )
    }
    # The pytest process's own settings (SPARK_MASTER=local[2], ...) must not win over the
    # stack's file: only the ports are overridden.
    defined = cluster.read_env_file(cluster.ENV_FILE, {})
    environ = {k: v for k, v in os.environ.items() if k not in defined}
    environ |= {
        "LAKEHOUSE_HOME": str(base),
        **ports,
        "LAKEHOUSE_SLACK_WEBHOOK_URL": slack[0],
        # A run with a worker down fails after this wait instead of the stack's 120 s.
        "LAKEHOUSE_SPARK_EXECUTOR_WAIT_S": str(EXECUTOR_WAIT_S),
        # The workers delete an ended application's folder within seconds, not days.
        "CLUSTER_WORKER_APP_DATA_TTL_S": "1",
        "CLUSTER_WORKER_CLEANUP_INTERVAL_S": str(WORKER_CLEANUP_S),
    }
    stack = cluster.up(cluster.Stack.from_env(environ))
    try:
        yield stack
    finally:
        cluster.down(stack)
        assert cluster._marked(stack) == []  # nothing it started is left running
    remove_unless_failed(request, base)  # about 1 GB: PostgreSQL, the workers' folders


def remove_unless_failed(request: pytest.FixtureRequest, home: Path) -> None:
    """Delete a test's home when every test so far passed; else keep it, and say where (on
    the terminal: a teardown's own output shows only when the module's last test failed).
    Not reached when the stack failed to come up or to go down: then it is kept."""
    if not request.session.testsfailed:
        shutil.rmtree(home, ignore_errors=True)
    elif reporter := request.config.pluginmanager.get_plugin("terminalreporter"):
        reporter.write_line(f"\nkept for inspection (a test failed): {home}")


def test_every_component_answers(stack, capsys):
    assert cluster.status(stack)
    printed = capsys.readouterr().out
    for name in ("postgres", "spark-master", "spark-worker-1", "spark-worker-2", "thrift", "s3",
                 "pushgateway", "prometheus"):  # fmt: skip
        assert f"{name} " in printed and "DOWN" not in printed
    # The secrets are generated, kept owner-only, and never in the committed environment file.
    secrets_file = stack.state / "secrets.env"
    assert secrets_file.stat().st_mode & 0o077 == 0
    password = stack.env["DAGSTER_PG_PASSWORD"]
    assert password and password not in cluster.ENV_FILE.read_text()
    conf = Path(stack.env["LAKEHOUSE_HOME"]) / "spark-conf" / "spark-defaults.conf"
    assert conf.stat().st_mode & 0o077 == 0  # it carries the catalog password for Spark


def gold_hashes(settings: Settings) -> dict[str, tuple[int, str]]:
    """Per Gold table: rows, and a hash of its rows independent of their order."""
    catalog = open_catalog(settings)
    out = {}
    for _, table in catalog.list_tables("gold"):
        frame = catalog.load_table(f"gold.{table}").scan().to_polars()
        frame = frame.select(sorted(c for c in frame.columns if not c.startswith("_")))
        rows = sorted(str(r) for r in frame.iter_rows())
        out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


@pytest.fixture(scope="module")
def embedded_gold(request):
    """The same days, seed and scale through `make demo`'s embedded lakehouse."""
    home = Path(tempfile.mkdtemp(prefix="lakehouse-embedded-"))
    keep = ("PATH", "HOME", "LANG", "JAVA_HOME", "UV_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "LAKEHOUSE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": str(REPO_ROOT),
        "SPARK_MASTER": "local[2]",
        "SPARK_DRIVER_MEMORY": "2g",
    }
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(
        (REPO_ROOT / "deployment" / "dagster.yaml").read_text()
    )
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--start", DAY.isoformat(), "--days", str(DAYS),
         "--scale", SCALE],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    yield gold_hashes(Settings.from_env(env))
    remove_unless_failed(request, home)


@pytest.fixture(scope="module")
def cluster_run(stack):
    """The days as one run launched through the webserver's GraphQL API, run by the daemon."""
    settings = stack.settings
    set_sensors(stack, SENSORS, running=False)  # the run covers these files
    generate(settings, DAY, DAYS, SCALE)
    run_id = launch(stack, "daily_lakehouse", DAY, LAST)
    assert wait(stack, run_id, timeout_s=1500) == "SUCCESS"
    # Paused means paused: a sensor pass under way when they were stopped launched nothing.
    assert sensor_runs(stack) == []
    return settings, run_id


def test_gold_on_the_cluster_equals_the_embedded_run(stack, cluster_run, embedded_gold):
    settings, _ = cluster_run
    on_cluster = gold_hashes(settings)
    compared = _marts(embedded_gold)  # the quality report records its own runs
    assert compared, "the embedded run wrote no Gold"
    assert {t: on_cluster.get(t) for t in compared} == compared
    for table in ("fct_orders", "agg_daily_sales", "dim_customers", "product_funnel"):
        assert compared[table][0] > 0, table  # not two empty tables agreeing


def test_bronze_and_silver_ran_on_both_workers_and_gold_in_the_thrift_server(stack, cluster_run):
    settings, _ = cluster_run
    ran = where_it_ran(stack, settings)
    workers = len(cluster.get_json(f"{stack.spark_ui}/json")["workers"])
    assert workers == 2
    for table in ("bronze.orders", "silver.orders", "silver.clickstream"):
        assert ran[table]["app"] == "lakehouse-dagster", ran[table]
        assert len(ran[table]["workers"]) == 2, ran[table]  # executors on both workers
    for table in ("gold.fct_orders", "gold.agg_daily_sales", "gold.dim_customers"):
        assert ran[table]["app"] == cluster.THRIFT_APP, ran[table]  # dbt ran through Thrift


def rows_on_days(catalog, name: str) -> int:
    """Rows of a Gold table on DAY..LAST (by its partition column), or all of them."""
    table = catalog.load_table(f"gold.{name}")
    fields = table.spec().fields
    if not fields:
        return table.scan().count()
    column = table.schema().find_field(fields[0].source_id).name
    return table.scan(row_filter=f"{column} >= '{DAY}' AND {column} <= '{LAST}'").count()


def test_the_daemon_pushes_each_runs_metrics_and_prometheus_scrapes_them(stack, cluster_run):
    # The whole path with nothing evaluated by hand: the daemon ticks the metrics sensor after
    # the run (its last step scored the days); Prometheus scrapes every 15 s.
    url = f"http://{stack.host('PROMETHEUS')}:{stack.port('PROMETHEUS')}"
    days = {(DAY + timedelta(days=n)).isoformat() for n in range(DAYS)}

    def scraped(promql: str, label: str = "partition") -> dict[str, float]:
        return prometheus.by_label(url, promql, label)

    run = wait_for("the run's metrics in Prometheus", lambda: scraped(
        'lakehouse_run_success{job="daily_lakehouse"}'), timeout=300)  # fmt: skip
    assert run == {f"{DAY}..{LAST}": 1.0}
    gold = scraped('lakehouse_rows_written{job="daily_lakehouse",layer="gold"}', "table")
    # Each day's rows summed (a day without rows counts 0), or a dimension's rebuild: the
    # rows each table holds on the run's days (a model may also touch a day next to them).
    catalog = open_catalog(stack.settings)
    assert gold == {t: rows_on_days(catalog, t) for t in gold} and gold["fct_orders"] > 0
    scores = wait_for("the report's scores", lambda: scraped(
        "lakehouse_quality_score_ratio") if len(scraped(
            "lakehouse_quality_score_ratio")) == DAYS else None, timeout=300)  # fmt: skip
    assert set(scores) == days and all(0 < v <= 1 for v in scores.values())
    assert not [a for a in prometheus.active_alerts(url)
                if a["labels"]["alertname"] == "LakehouseDailyRunFailed"]  # fmt: skip


def sensor_runs(stack, sensors: list[str] = SENSORS) -> list[dict]:
    query = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
      ... on Runs { results { runId jobName tags { key value } } } } }"""
    runs = []
    for name in sensors:
        tags = [{"key": "dagster/sensor_name", "value": name}]
        runs += cluster.graphql(stack, query, {"tags": tags})["runsOrError"]["results"]
    return runs


def wait_for_runs(
    stack, count: int, timeout_s: float = 300, sensors: list[str] = SENSORS
) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = sensor_runs(stack, sensors)
        if len(runs) >= count:
            return runs
        time.sleep(5)
    return sensor_runs(stack, sensors)


def test_files_landing_in_the_bucket_launch_one_run_per_day_and_object_version(stack, cluster_run):
    set_sensors(stack, SENSORS, running=True)
    s3 = cluster.s3_client(stack)
    bucket = stack.env["CLUSTER_LANDING_BUCKET"]
    day = (LAST + timedelta(days=1)).isoformat()
    key = f"lake/clickstream/{day}/part-00000.jsonl"
    line = (
        '{"event_id": "late-1", "user_id": 1, "event_type": "view", "timestamp": "%sT10:00:00Z"}\n'
    )
    s3.put_object(Bucket=bucket, Key=key, Body=(line % day).encode())
    first = wait_for_runs(stack, 1)
    assert len(first) == 1, first  # one run for the new day; the day already built: none
    tags = {t["key"]: t["value"] for t in first[0]["tags"]}
    assert (first[0]["jobName"], tags["dagster/partition"]) == ("clickstream_arrival", day)
    # Rewritten after that run read it (before, the run takes the new version itself and the
    # sensor rightly only remembers it): one more run.
    assert wait(stack, first[0]["runId"], timeout_s=900) == "SUCCESS"
    rewritten = line % day + line.replace("late-1", "late-2") % day
    s3.put_object(Bucket=bucket, Key=key, Body=rewritten.encode())
    second = wait_for_runs(stack, 2)
    assert len(second) == 2, second  # the rewritten object: one more run, nothing else
    time.sleep(70)  # another sensor tick: still nothing new
    assert len(sensor_runs(stack)) == 2


STREAM_SENSOR = "inventory_micro_batches"
STREAM_WAREHOUSE = "wh-cluster"  # this test's events only


def test_inventory_landing_in_the_bucket_streams_on_the_cluster(stack, cluster_run):
    """The inventory stream through the daemon: its sensor sees objects in the bucket and
    launches a micro-batch run; the run's driver streams the arrivals log (an Iceberg table in
    the warehouse) and its executors on the workers read the objects it names. Nothing in the
    driver's LAKEHOUSE_HOME but the checkpoint."""
    settings = stack.settings
    set_sensors(stack, SENSORS, running=False)  # the daily arrival runs are not under test
    catalog = open_catalog(settings)
    products = catalog.load_table("silver.products").scan(selected_fields=("product_id",))
    first, second = sorted(products.to_arrow()["product_id"].to_pylist())[:2]
    day = (LAST + timedelta(days=2)).isoformat()
    events = [  # first: 40, then 3 left; second: 7 left (topic of its own: no clash)
        (1, first, 40, "08:00:00"), (2, first, 3, "09:00:00"), (3, second, 7, "09:30:00"),
    ]  # fmt: skip
    lines = "".join(
        json.dumps({"topic": "inventory-cluster", "partition": 0, "offset": offset,
                    "event_id": f"cl-{offset}", "product_id": product,
                    "warehouse_id": STREAM_WAREHOUSE, "change": -1, "stock_level": level,
                    "reason": "sale", "event_ts": f"{day}T{clock}Z"}) + "\n"
        for offset, product, level, clock in events
    )  # fmt: skip
    s3 = cluster.s3_client(stack)
    key = f"lake/inventory/{day}/part-00000.jsonl"
    s3.put_object(Bucket=stack.env["CLUSTER_LANDING_BUCKET"], Key=key, Body=lines.encode())
    set_sensors(stack, [STREAM_SENSOR], running=True)
    try:
        [run] = wait_for_runs(stack, 1, sensors=[STREAM_SENSOR])
        assert run["jobName"] == "inventory_micro_batch"
        assert wait(stack, run["runId"], timeout_s=900) == "SUCCESS"
    finally:
        set_sensors(stack, [STREAM_SENSOR], running=False)
    streamed = catalog.load_table("silver.inventory_stream").scan(
        row_filter=f"warehouse_id == '{STREAM_WAREHOUSE}'"
    ).to_arrow()  # fmt: skip
    assert sorted(streamed["offset"].to_pylist()) == [1, 2, 3]
    now = catalog.load_table("gold.low_stock_now").scan(
        row_filter=f"warehouse_id == '{STREAM_WAREHOUSE}'"
    ).to_arrow()  # fmt: skip
    stock = dict(zip(now["product_id"].to_pylist(), now["stock_level"].to_pylist(), strict=True))
    assert stock == {first: 3, second: 7}
    # The earlier days' inventory files came along in the same run (the first catch-up).
    assert catalog.load_table("silver.inventory_stream").scan().to_arrow().num_rows > 3
    ran = where_it_ran(stack, settings)["silver.inventory_stream"]
    assert ran["app"] == "lakehouse-dagster" and len(ran["workers"]) == 2, ran
    state = Path(stack.env["LAKEHOUSE_HOME"]) / "streams" / "inventory"
    assert {p.name for p in state.iterdir()} == {"checkpoint", "stream.lock"}


def test_the_workers_delete_the_folders_of_applications_that_ended(stack, cluster_run):
    """Every executor fetches its application's jars (48 MB) into a folder of its worker: the
    workers delete the folder once the application has ended and nothing in it is newer than
    CLUSTER_WORKER_APP_DATA_TTL_S, and keep the folder of one with an executor there (the
    Thrift server's)."""

    def apps(state: str) -> dict[str, str]:
        master = cluster.get_json(f"{stack.spark_ui}/json")
        return {a["id"]: a["name"] for a in master[state]}

    def folders() -> set[str]:
        return {d.name for d in (stack.state / "spark").glob("worker-*/app-*")}

    # A run's application ends a moment after the run reports success (its JVM stops).
    deadline = time.monotonic() + 60 + 2 * WORKER_CLEANUP_S
    while True:
        ended = set(apps("completedapps"))
        left = folders() & ended
        if (ended and not left) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ended and left == set(), (ended, left)  # the runs so far, and no folder of theirs
    thrift = {app for app, name in apps("activeapps").items() if name == cluster.THRIFT_APP}
    assert len(thrift) == 1 and thrift <= folders()  # running: kept


def test_the_table_report_reads_the_postgresql_catalog_without_a_jvm(stack, cluster_run):
    done = subprocess.run(
        [sys.executable, "-m", "tools.cluster", "exec", "--", sys.executable, "-m", "tools.tables"],
        cwd=REPO_ROOT,
        env={**stack.source},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lakehouse.gold: " in done.stdout and "fct_orders" in done.stdout
    assert "orders_quarantine" in done.stdout
    assert stack.env["DAGSTER_PG_PASSWORD"] not in done.stdout + done.stderr


def _alerts_for(slack, run_id: str, timeout_s: float = 120) -> list[dict]:
    """What the daemon's failure sensor posted for the run (it ticks every 30 s or so)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in slack[1] if p["run_id"] == run_id]
        if found:
            return found
        time.sleep(3)
    return []


GOLD = [list(key.path) for key in sorted(gold_marts.keys, key=str)]


def test_a_run_while_the_thrift_server_is_down_fails_naming_it_alerts_and_reruns(
    stack, cluster_run, embedded_gold, slack
):
    cluster.stop(stack, "thrift")
    endpoint = f"{stack.host('THRIFT')}:{stack.port('THRIFT')}"
    run_id = launch(stack, "daily_lakehouse", DAY, LAST, assets=GOLD)  # "Materialize" Gold
    assert wait(stack, run_id, timeout_s=600) == "FAILURE"
    errors = step_errors(stack, run_id)  # what the UI's run page shows
    assert errors and all(f"Spark Thrift server at {endpoint} does not answer" in e
                          for e in errors.values()), errors  # fmt: skip
    [alert] = _alerts_for(slack, run_id)  # posted once, by the daemon's failure sensor
    assert f"Spark Thrift server at {endpoint}" in " ".join(alert["failed_steps"])
    assert alert["partition"] == f"{DAY}..{LAST}"
    assert "gold/fct_orders" in alert["assets"]  # what the failure left stale
    # `make cluster-up` starts what is down, and only that; the UI's "Re-execute from failure"
    # then succeeds, and Gold is what it was (nothing half-written, nothing doubled).
    cluster.up(stack)
    assert cluster.status(stack, quiet=True)
    assert wait(stack, reexecute(stack, run_id), timeout_s=900) == "SUCCESS"
    compared = _marts(embedded_gold)  # the quality report records its own runs
    assert {t: gold_hashes(stack.settings).get(t) for t in compared} == compared


def _marts(hashes: dict) -> dict:
    return {t: v for t, v in hashes.items() if t != "data_quality_daily"}


def _alive_workers(stack) -> int:
    return cluster.get_json(f"{stack.spark_ui}/json")["aliveworkers"]


def test_a_run_while_a_worker_is_down_fails_naming_the_master_and_reruns(stack, cluster_run, slack):
    cluster.stop(stack, f"spark-worker-{stack.workers}")
    deadline = time.monotonic() + 60
    while _alive_workers(stack) == stack.workers and time.monotonic() < deadline:
        time.sleep(1)  # the master drops it when its connection closes
    assert _alive_workers(stack) == stack.workers - 1
    master = stack.env["SPARK_MASTER"]
    began = time.monotonic()
    run_id = launch(
        stack,
        "daily_lakehouse",
        DAY,
        LAST,
        assets=[["silver", "orders"], ["silver", "orders_quarantine"]],
    )
    assert wait(stack, run_id, timeout_s=600) == "FAILURE"
    # It waited for the executors, then gave up: not stuck, and not retried.
    assert time.monotonic() - began >= EXECUTOR_WAIT_S
    [error] = step_errors(stack, run_id).values()
    # 0 or 1: the Thrift server, which lost its executor on the stopped worker, may have taken
    # the other worker's free core meanwhile.
    expected = f"of {stack.workers} Spark executors registered with {master} within"
    assert expected in error, error
    [alert] = _alerts_for(slack, run_id)
    assert expected in " ".join(alert["failed_steps"])
    # The quality report (the failure sensor starts one after the failed run) may rewrite its
    # own table meanwhile: the marts are what must not move.
    before = _marts(gold_hashes(stack.settings))
    cluster.up(stack)  # the worker comes back, and the Thrift server spreads out again
    assert _alive_workers(stack) == stack.workers
    assert cluster.status(stack, quiet=True)
    assert wait(stack, reexecute(stack, run_id), timeout_s=900) == "SUCCESS"
    ran = where_it_ran(stack, stack.settings)["silver.orders"]
    assert len(ran["workers"]) == stack.workers, ran  # both workers again
    assert _marts(gold_hashes(stack.settings)) == before  # Silver rebuilt the same days
