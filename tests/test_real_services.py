"""The production shape on real parts: a Spark standalone master and worker, a PostgreSQL
server holding both the Iceberg catalog and the operational database, and spark-submit.

Both servers are started by the tests on loopback (PostgreSQL from Debian's package, Spark from
pyspark's own distribution) and stopped after. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from spark_jobs.session import write_spark_defaults
from spark_jobs.settings import REPO_ROOT, Settings
from tools.screenshot import free_port

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
SPARK_HOME = Path(__import__("pyspark").__file__).parent
DAY = "2026-05-05"


def as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def postgres():
    if PG_BIN is None:
        pytest.fail("PostgreSQL server binaries missing: apt-get install postgresql")
    # Not under pytest's tmp dir: the postgres user must be able to reach it.
    data = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_postgres([str(PG_BIN / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"])
    as_postgres(
        [
            str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
            "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start",
        ]
    )  # fmt: skip

    def psql(sql: str, db: str = "postgres") -> str:
        return as_postgres(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        ).stdout  # fmt: skip

    psql("CREATE DATABASE shop")
    psql("CREATE DATABASE iceberg")
    psql(
        """
        CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name TEXT, email TEXT,
            segment TEXT, region TEXT, created_at TIMESTAMP, updated_at TIMESTAMP);
        CREATE TABLE products (product_id BIGINT PRIMARY KEY, name TEXT, category TEXT,
            unit_price NUMERIC(12,2), unit_cost NUMERIC(12,2), updated_at TIMESTAMP);
        CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT, product_id BIGINT,
            quantity INT, amount NUMERIC(12,2), status TEXT, order_ts TIMESTAMP,
            updated_at TIMESTAMP);
        INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', 'consumer', 'north',
            '2026-05-05 08:00', '2026-05-05 08:00');
        INSERT INTO products VALUES (7, 'Kettle', 'home', 30.00, 12.00, '2026-05-05 08:00');
        INSERT INTO orders VALUES
            (100, 1, 7, 2, 60.00, 'placed', '2026-05-05 09:00', '2026-05-05 09:00'),
            (101, 1, 7, 1, 30.00, 'shipped', '2026-05-05 10:00', '2026-05-05 18:00'),
            (102, 1, 7, 1, 30.00, 'placed', '2026-05-06 10:00', '2026-05-06 10:00');
        """,
        db="shop",
    )
    try:
        yield port, psql
    finally:
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "stop", "-m", "fast"])
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A standalone master and one worker (1 core, 1 GiB) from pyspark's own SPARK_HOME."""
    logs = tmp_path_factory.mktemp("spark-cluster")
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(logs)}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    with open(logs / "master.log", "w") as master_log, open(logs / "worker.log", "w") as worker_log:
        master = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui)],
            env=env, stdout=master_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        worker = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
             "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
             "--webui-port", str(free_port()), "--work-dir", str(logs / "work")],
            env=env, stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_for_worker(ui, logs)
            yield f"spark://127.0.0.1:{port}", lambda: _cluster_state(ui)
        finally:
            for process in (worker, master):
                process.terminate()
            for process in (worker, master):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    # Seen in CI on a loaded box: the worker still stopping 30 s after its
                    # SIGTERM. The master then never had its terminate(), and both JVMs ran
                    # on through the rest of the suite.
                    process.kill()
                    process.wait(timeout=30)


def _cluster_state(ui: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json", timeout=2) as response:
        return json.loads(response.read())


def _wait_for_worker(ui: int, logs: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if _cluster_state(ui).get("aliveworkers", 0) >= 1:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            tail = (logs / "worker.log").read_text()[-2000:]
            pytest.fail(f"the Spark worker did not register:\n{tail}")
        time.sleep(1)


def test_bronze_on_a_cluster_with_postgres_catalog_and_source(postgres, spark_cluster, tmp_path):
    pg_port, psql = postgres
    master, cluster_state = spark_cluster
    (tmp_path / "landing" / "clickstream" / DAY).mkdir(parents=True)
    (tmp_path / "landing" / "clickstream" / DAY / "part-0.jsonl").write_text(
        '{"event_id": "e1", "user_id": 1, "event_type": "view"}\n{"truncated\n'
    )
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp_path),
        "SPARK_MASTER": master,
        "SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_CATALOG_URI": f"jdbc:postgresql://127.0.0.1:{pg_port}/iceberg",
        "LAKEHOUSE_CATALOG_USER": "postgres",
        "LAKEHOUSE_SOURCE_URL": f"jdbc:postgresql://127.0.0.1:{pg_port}/shop",
        "LAKEHOUSE_SOURCE_USER": "postgres",
        "PYTHONPATH": str(REPO_ROOT),  # as `make run` sets it
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    # What `make run` does: spark-defaults.conf from the same settings, then spark-submit.
    conf_dir = write_spark_defaults(Settings.from_env(env))
    done = subprocess.run(
        [str(SPARK_HOME / "bin" / "spark-submit"), "spark_jobs/cli.py", "bronze", "--date", DAY],
        cwd=REPO_ROOT,
        env={**env, "SPARK_CONF_DIR": str(conf_dir), "SPARK_HOME": str(SPARK_HOME)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = dict(
        line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith("lakehouse.")
    )
    assert printed["lakehouse.bronze.orders"].startswith("2 rows")  # the 05-06 order waits
    assert printed["lakehouse.bronze.customers"].startswith("1 rows")
    assert printed["lakehouse.bronze.clickstream"].startswith("2 rows")  # malformed line kept
    tables = psql("SELECT table_namespace || '.' || table_name FROM iceberg_tables", db="iceberg")
    assert {"bronze.orders", "bronze.clickstream"} <= set(tables.split())
    apps = cluster_state()["completedapps"] + cluster_state()["activeapps"]
    assert any(app["name"] == "lakehouse-bronze" for app in apps)
