"""Hand-built sources for tests: an operational database and landing files, row by row."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from spark_jobs.settings import Settings
from tools.generate import DDL
from tools.screenshot import free_port


def write_source_db(settings: Settings, tables: dict[str, list[tuple]]) -> None:
    """Replace the embedded operational database with exactly these rows."""
    path = settings.source_db_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        for name, ddl in DDL.items():
            con.execute(ddl)
            rows = tables.get(name, [])
            if rows:
                marks = ", ".join("?" for _ in rows[0])
                con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)


def write_landing(settings: Settings, source: str, day: date, lines: list[str | dict]) -> None:
    folder = Path(settings.landing) / source / day.isoformat()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / "part-00000.jsonl").write_text(text)


def click(event_id: str, event_type: str, product_id: int, ts: str, user_id: int = 1) -> dict:
    return {
        "event_id": event_id,
        "user_id": user_id,
        "session_id": f"s-{user_id}",
        "event_type": event_type,
        "page_url": f"/products/{product_id}",
        "timestamp": ts,
        "properties": {"product_id": product_id},
    }


def stock_event(offset: int, product_id: int, change: int, level: int, ts: str) -> dict:
    return {
        "topic": "inventory-events",
        "partition": 0,
        "offset": offset,
        "key": str(product_id),
        "event_id": f"inv-{offset}",
        "product_id": product_id,
        "warehouse_id": "wh-1",
        "change": change,
        "stock_level": level,
        "reason": "sale" if change < 0 else "restock",
        "event_ts": ts,
    }


def dbt_invocations(settings: Settings, run_id: str) -> list[Path]:
    """A run's dbt target folders: dagster-dbt names each for its step and run; the project
    keeps them in the home, not in the source tree."""
    return list((settings.home / "dbt" / "target").glob(f"*-{run_id[:7]}-*"))


def parse_messages(invocation: Path) -> list[str]:
    """What dbt said of its parsing in an invocation (partial or full, and why)."""
    lines = (json.loads(line)["info"]["msg"] for line in (invocation / "dbt.log").open())
    return [m for m in lines if "partial pars" in m.lower()]


def reused_its_parse(invocation: Path) -> bool:
    said = parse_messages(invocation)
    unable = [m for m in said if m.startswith("Unable to do partial parsing")]
    return "Nothing changed, skipping partial parsing." in said and not unable


def empty_lakehouse(spark) -> None:
    """Drop every table: the next run starts on an empty lakehouse."""
    from spark_jobs.settings import NAMESPACES

    for namespace in NAMESPACES:
        for row in spark.sql(f"SHOW TABLES IN lakehouse.{namespace}").collect():
            spark.sql(f"DROP TABLE IF EXISTS lakehouse.{namespace}.{row.tableName} PURGE")


def wait_for(what: str, condition, timeout: float = 60.0, interval: float = 1.0):
    """``condition()``'s first truthy value, polled until ``timeout``; else a failure naming
    what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def webhook(status: int = 200, delay_s: float = 0.0):
    """A Slack-like webhook on loopback: yields its URL and the JSON payloads posted to it.
    It answers ``status`` (500: Slack is down), after ``delay_s`` (a slow Slack); posts at
    the same time are handled at the same time."""
    received: list[dict] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            time.sleep(delay_s)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def s3_landing(env, endpoint: str, bucket: str, prefix: str):
    """Point the landing zone at ``s3://bucket/prefix`` on the S3 API at ``endpoint`` (through
    ``env``, a pytest MonkeyPatch), create the bucket, and return a client to put objects."""
    import boto3

    for name, value in {
        "LAKEHOUSE_LANDING": f"s3://{bucket}/{prefix}",
        "LAKEHOUSE_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        env.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return s3


def spark_jobs_in(spark, group: str) -> list[int]:
    """The Spark jobs of ``group`` so far. Spark records a job through its listener bus, a
    moment after the action: drained first, so a job that just ran is not missed."""
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
    return list(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def record_code_generation(patch, calls: list) -> None:
    """Note, in ``calls``, each block ``session.compiled_from`` decides for Silver's tables and
    Gold's build: ``(what, rows, compiled, Spark's factory mode inside)``; and Spark's mode
    as each Gold model's output is read (``what`` "gold output"), after its statements ran."""
    from lakehouse_assets.gold import assets as gold
    from spark_jobs import session
    from spark_jobs.silver import runner

    def recording(what: str):
        @contextlib.contextmanager
        def compiled_from(spark, rows: int, min_rows: int):
            with session.compiled_from(spark, rows, min_rows) as compiled:
                calls.append(
                    (what, rows, compiled, spark.conf.get(session.CODEGEN_FACTORY_MODE, None))
                )
                yield compiled

        return compiled_from

    def at_output(table_metadata):
        def read(*args, **kwargs):
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()  # the run's: Gold's step is in its thread
            assert active is not None
            calls.append(
                ("gold output", None, None, active.conf.get(session.CODEGEN_FACTORY_MODE, None))
            )
            return table_metadata(*args, **kwargs)

        return read

    patch.setattr(runner, "compiled_from", recording("silver"))
    patch.setattr(gold, "compiled_from", recording("gold"))
    patch.setattr(gold, "table_metadata", at_output(gold.table_metadata))


def _each(scala):
    """A Scala collection's items, through py4j."""
    items = scala.iterator()
    while items.hasNext():
        yield items.next()


def _sql_store(spark):
    """Spark's SQL status store, once its listener bus has drained (a statement that just
    ran is in it)."""
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
    return spark._jsparkSession.sharedState().statusStore()


def last_sql_execution(spark) -> int:
    """The id of the latest SQL statement Spark has recorded (-1: none yet)."""
    return max((e.executionId() for e in _each(_sql_store(spark).executionsList())), default=-1)


def iceberg_scans(spark, after: int) -> list[tuple[str, str, dict[str, str]]]:
    """Each Iceberg table scan of the SQL statements after ``after`` (``last_sql_execution``):
    (the statement's description, the scan, Iceberg's scan metrics by name, such as "number
    of result data files"). From Spark's SQL status store, the one the Spark UI's SQL tab
    shows; a statement dbt sent through the Thrift server is described by its SQL, which
    starts with dbt's comment naming the node (``"node_id": "model.lakehouse.fct_orders"``).
    The store keeps the latest ``spark.sql.ui.retainedExecutions`` statements (1,000): one
    of those after ``after`` dropped already fails here, not as a scan missing."""
    store = _sql_store(spark)
    scans, kept = [], []
    for execution in _each(store.executionsList()):
        kept.append(execution.executionId())
        if execution.executionId() <= after:
            continue
        values = store.executionMetrics(execution.executionId())
        for node in _each(store.planGraph(execution.executionId()).allNodes()):
            if not node.name().startswith("BatchScan "):
                continue
            metrics = {}
            for metric in _each(node.metrics()):
                value = values.get(metric.accumulatorId())
                metrics[metric.name()] = value.get() if value.isDefined() else None
            scans.append((execution.description(), node.name(), metrics))
    assert kept and min(kept) <= after + 1, f"Spark's status store dropped statements after {after}"
    return scans
