"""`make cluster-demo`: the demo on the production stack (`make cluster-up` first).

    python -m tools.cluster_demo [--start YYYY-MM-DD] [--days 3] [--scale small]

Generates the same data as `make demo` (same seed) into the stack's PostgreSQL ``shop`` database
and its S3 landing bucket, launches ``daily_lakehouse`` for the days as one run **through the
daemon** (the webserver's GraphQL ``launchRun``, as the UI's Launch button does), waits for it
(its last step scores the days' quality), and prints the same report as `make demo`, then where
each layer ran: the Spark application that wrote each table (from the Iceberg snapshot's
``spark.app.id``) and the workers its executors ran on.

While it loads the days, the landing sensors are paused, as an operator would for a bulk load:
the run covers those files, and once it has built them the sensors, resumed, only remember them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta

from lakehouse_assets.partitions import RANGE_END, RANGE_START
from lakehouse_assets.resources.catalog import open_catalog
from spark_jobs.registry import landing_feeds
from spark_jobs.settings import NAMESPACES, Settings
from tools.cluster import ClusterError, Stack, get_json, graphql, status
from tools.demo import JOB, default_start, report, stage_times, yesterday
from tools.generate import SCALES, generate

LOCATION = {"repositoryLocationName": "lakehouse", "repositoryName": "__repository__"}
DONE = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""


REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""


def launch(
    stack: Stack, job: str, start: date, last: date, assets: list[list[str]] | None = None
) -> str:
    """Queue one run of ``job`` over the days, as the UI's Launch button does (``assets``: the
    keys of a subset, as "Materialize selected" does)."""
    tags = [
        {"key": RANGE_START, "value": start.isoformat()},
        {"key": RANGE_END, "value": last.isoformat()},
    ]
    selector: dict = {**LOCATION, "jobName": job}
    if assets is not None:
        selector["assetSelection"] = [{"path": key} for key in assets]
    params = {"selector": selector, "runConfigData": {}, "executionMetadata": {"tags": tags}}
    return _run_id(graphql(stack, LAUNCH, {"params": params})["launchRun"], job)


def reexecute(stack: Stack, run_id: str, strategy: str = "FROM_FAILURE") -> str:
    """The UI's "Re-execute from failure": the steps that failed or did not run, same tags."""
    params = {"parentRunId": run_id, "strategy": strategy}
    result = graphql(stack, REEXECUTE, {"params": params})["launchRunReexecution"]
    return _run_id(result, f"re-executing {run_id}")


def _run_id(result: dict, what: str) -> str:
    if result["__typename"] != "LaunchRunSuccess":
        raise ClusterError(f"launching {what}: {result.get('message', result['__typename'])}")
    return result["run"]["runId"]


def run_status(stack: Stack, run_id: str) -> str:
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    return graphql(stack, query, {"id": run_id})["runOrError"]["status"]


def wait(stack: Stack, run_id: str, timeout_s: float = 1800) -> str:
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        now = run_status(stack, run_id)
        if now != last:
            print(f"  run {run_id[:8]}: {now}", flush=True)
            last = now
        if now in DONE:
            return now
        time.sleep(3)
    raise ClusterError(f"run {run_id} did not finish within {timeout_s:.0f}s")


STEP_ERRORS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection {
  events { __typename ... on ExecutionStepFailureEvent {
    stepKey error { message causes { message } } } } } } } }"""


def step_errors(stack: Stack, run_id: str) -> dict[str, str]:
    """Per failed step, its error as the UI's run page shows it (the causes' messages too)."""
    events = graphql(stack, STEP_ERRORS, {"id": run_id})["runOrError"]["eventConnection"]
    out = {}
    for event in events["events"]:
        if event["__typename"] == "ExecutionStepFailureEvent":
            error = event["error"] or {}
            messages = [error.get("message", "")] + [c["message"] for c in error.get("causes", [])]
            out[event["stepKey"]] = " | ".join(m.strip() for m in messages if m)
    return out


SENSOR_STATE = """query($s: SensorSelector!) {
  sensorOrError(sensorSelector: $s) { ... on Sensor { id sensorState { status } } } }"""
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
  __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""
STOP_SENSOR = """mutation($id: String) { stopSensor(id: $id) {
  __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""


def set_sensors(stack: Stack, names: list[str], running: bool, stops: int = 3) -> None:
    """Start or stop the sensors. Stopping returns once they read stopped and no tick of
    theirs can still launch a run. The daemon reads the sensors' states once per pass, so a
    pass already under way when the stop lands still ticks them; and a tick under way writes
    the sensor's state back as it read it, running again (Dagster's daemon: seen here, the
    sensor ticking on and launching three runs for files written after the stop). So each
    stop is checked once the sensors are quiet, and made again if it was undone."""
    running_again = names
    for _ in range(stops):
        stopped_at = time.time()
        for name in names:
            selector = {**LOCATION, "sensorName": name}
            if running:
                done = graphql(stack, START_SENSOR, {"s": selector})["startSensor"]
                _ensure(done, "Sensor", f"starting {name}")
                continue
            sensor_id = graphql(stack, SENSOR_STATE, {"s": selector})["sensorOrError"]["id"]
            done = graphql(stack, STOP_SENSOR, {"id": sensor_id})["stopSensor"]
            _ensure(done, "StopSensorMutationResult", f"stopping {name}")
        if running:
            return
        _wait_for_quiet_sensors(stack, names, stopped_at)
        running_again = [name for name in names if _sensor_status(stack, name) != "STOPPED"]
        if not running_again:
            return
    raise ClusterError(f"the sensors {', '.join(running_again)} run again after {stops} stops")


def _ensure(result: dict, expected: str, what: str) -> None:
    if result["__typename"] != expected:
        raise ClusterError(f"dagster-webserver: {what}: {result.get('message', result)}")


def _sensor_status(stack: Stack, name: str) -> str:
    sensor = graphql(stack, SENSOR_STATE, {"s": {**LOCATION, "sensorName": name}})
    return sensor["sensorOrError"]["sensorState"]["status"]


LATEST_TICKS = """query($r: RepositorySelector!) { sensorsOrError(repositorySelector: $r) {
  ... on Sensors { results { name sensorState { ticks(limit: 1) { status timestamp } } } } } }"""


def _wait_for_quiet_sensors(
    stack: Stack, names: list[str], since: float, settle_s: float = 45, timeout_s: float = 300
) -> None:
    """Until ``settle_s`` have gone by without any of them starting a tick, and no tick of any
    sensor of the location is in flight; or until one of them reads running again. The
    daemon ticks the sensors of a pass one after another: a pass under way when the stop
    landed reached a stopped sensor more than 15 s after it, behind another sensor's long
    tick, on a slow box (three runs for files written just after the stop)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sensors = graphql(stack, LATEST_TICKS, {"r": LOCATION})["sensorsOrError"]["results"]
        latest = {s["name"]: s["sensorState"]["ticks"] for s in sensors}
        in_flight = any(t["status"] == "STARTED" for ticks in latest.values() for t in ticks)
        last_start = max([since] + [t["timestamp"] for n in names for t in latest.get(n, [])])
        if not in_flight and time.time() - last_start >= settle_s:
            return
        # A tick under way when the stop landed wrote the sensor back as running: it ticks on
        # and is never quiet (CI, 2026-12-08: every 30 s for 300 s). The caller stops it again.
        if not in_flight and any(_sensor_status(stack, n) != "STOPPED" for n in names):
            return
        time.sleep(2)
    raise ClusterError(f"the sensors {', '.join(names)} still tick {timeout_s:.0f}s after a stop")


def where_it_ran(stack: Stack, settings: Settings) -> dict[str, dict]:
    """Per table: the Spark application that wrote its latest snapshot, and the workers that
    ran that application's executors."""
    master = get_json(f"{stack.spark_ui}/json")
    apps = {a["id"]: a["name"] for a in master["activeapps"] + master["completedapps"]}
    executors: dict[str, set[str]] = {}
    # ALIVE only: a restarted worker leaves a DEAD entry with the same UI address behind.
    for worker in (w for w in master["workers"] if w["state"] == "ALIVE"):
        state = get_json(f"{worker['webuiaddress']}/json")
        for executor in state.get("executors", []) + state.get("finishedexecutors", []):
            executors.setdefault(executor["appid"], set()).add(f"{worker['host']}:{worker['port']}")
    catalog = open_catalog(settings)
    out = {}
    for layer in NAMESPACES:
        for _, table in sorted(catalog.list_tables(layer)):
            snapshot = catalog.load_table(f"{layer}.{table}").current_snapshot()
            summary = snapshot.summary if snapshot else None
            app = summary.additional_properties.get("spark.app.id") if summary else None
            out[f"{layer}.{table}"] = {
                "app_id": app,
                "app": apps.get(app or "", "(not on this cluster)"),
                "workers": sorted(executors.get(app or "", set())),
            }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--start", type=lambda t: date.fromisoformat(t) if t else None)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    args = parser.parse_args(argv)
    start = args.start or default_start(args.days)
    last = start + timedelta(days=args.days - 1)
    if last > yesterday():
        sys.exit(f"error: {args.days} days from {start} end after yesterday ({yesterday()})")
    stack = Stack.from_env()
    if not status(stack, quiet=True):
        sys.exit(
            "error: the stack is not up: run `make cluster-up` "
            "(`make cluster-status` says what is down)"
        )
    os.environ.update(stack.env)  # this process is a client of the stack from here on
    settings = stack.settings
    sensors = [f"{feed.name}_landed" for feed in landing_feeds()]
    try:
        set_sensors(stack, sensors, running=False)
        began = time.monotonic()
        generate(settings, start, args.days, args.scale)
        print(f"generated {args.days} days ({args.scale}) from {start} into "
              f"{settings.source_url.split('?')[0]} and {settings.landing} "
              f"in {time.monotonic() - began:.1f}s")  # fmt: skip
        began = time.monotonic()
        print(f"launching {JOB} for {start}..{last} through the daemon ({stack.dagster_url})")
        run_id = launch(stack, JOB, start, last)
        outcome = wait(stack, run_id)  # its last step scores the days' quality
        main_s = time.monotonic() - began
    finally:
        set_sensors(stack, sensors, running=True)
    if outcome != "SUCCESS":
        for step, error in step_errors(stack, run_id).items():
            print(f"  {step}: {error.splitlines()[0] if error else '(no message)'}")
        sys.exit(f"error: {JOB} run ended {outcome}: see {stack.dagster_url}/runs/{run_id}")
    report(settings)
    print("\nwhere each table was written (Spark application, workers that ran its executors)")
    for table, ran in where_it_ran(stack, settings).items():
        workers = ", ".join(ran["workers"]) or "-"
        print(f"  {table:<32} {ran['app']:<18} {workers}")
    print("\nwall time")
    print(f"  {'dagster run':<12} {main_s:6.1f}s")
    for stage, seconds in stage_times(run_id).items():
        print(f"  {stage:<12} {seconds:6.1f}s")
    print(f"\nrun {run_id} is in the stack's PostgreSQL: {stack.dagster_url}/runs/{run_id}")


if __name__ == "__main__":
    main()
