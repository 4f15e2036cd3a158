"""The demo: generate days of data, run the main job over them through Dagster, report.

    python -m tools.demo --days 3            # the 3 days that end yesterday
    python -m tools.demo --start 2026-01-01 --days 3

The job runs through the ``dagster`` CLI against the instance in ``DAGSTER_HOME``, the same
code path as a launch from the UI, so ``make dev`` shows the runs, metadata and check results.
The days end yesterday by default (the last daily partition), so the UI opens on fresh,
filled partitions; each step is printed as it starts and ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from lakehouse_assets.gold import data_quality_daily
from lakehouse_assets.partitions import RANGE_END, RANGE_START, START_DATE, TIMEZONE
from lakehouse_assets.resources.catalog import open_catalog
from spark_jobs.settings import NAMESPACES, REPO_ROOT, Settings
from tools.generate import SCALES, generate

JOB = "daily_lakehouse"  # the quality report (gold.data_quality_daily) included


def run_job(
    settings: Settings, job: str, start: date, last: date, source: str = "make demo"
) -> str:
    """Run a job over [start, last] as one run, as the UI would; return its run id."""
    tags = {RANGE_START: start.isoformat(), RANGE_END: last.isoformat(), "source": source}
    log = settings.home / "logs" / f"demo-{job}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "dagster", "job", "execute"]
    cmd += ["-m", "lakehouse_assets.definitions", "-j", job, "--tags", json.dumps(tags)]
    with log.open("w") as out:
        done = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each step's line as it happens
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        progress = Progress()
        assert done.stdout is not None  # stdout=PIPE
        for line in done.stdout:
            out.write(line)
            progress.feed(line)
        done.wait()
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        sys.exit("\n".join(tail) + f"\n\nerror: the {job} run failed; full log in {log}")
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        return instance.get_runs(limit=1)[0].run_id


# Dagster's log line for an event: "... - <run id> - <step key> - <EVENT_TYPE> - <message>".
_STEP_EVENT = re.compile(
    r" - [0-9a-f-]{36} - (?:\d+ - )?(?P<step>[\w.\[\]-]+) - "
    r"(?P<event>STEP_START|STEP_RESTARTED|STEP_SUCCESS|STEP_FAILURE|STEP_UP_FOR_RETRY) - "
)


class Progress:
    """Print each step of a run as Dagster starts and ends it, with the elapsed time."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.started: dict[str, float] = {}

    def feed(self, line: str) -> None:
        match = _STEP_EVENT.search(line)
        if not match:
            return
        step, event, now = match["step"], match["event"], time.monotonic()
        if event in ("STEP_START", "STEP_RESTARTED"):
            self.started[step] = now
            word = "started" if event == "STEP_START" else "restarted"
            print(f"  {now - self.began:6.1f}s  {step} {word}", flush=True)
            return
        took = now - self.started.get(step, now)
        word = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED"}.get(event, "will retry")
        print(f"  {now - self.began:6.1f}s  {step} {word} ({took:.1f}s)", flush=True)


def yesterday() -> date:
    """The last daily partition: yesterday in the partitions' timezone."""
    return datetime.now(ZoneInfo(TIMEZONE)).date() - timedelta(days=1)


def default_start(days: int) -> date:
    """The first of ``days`` days that end yesterday (never before the first partition)."""
    return max(yesterday() - timedelta(days=days - 1), date.fromisoformat(START_DATE))


def previous_demo(settings: Settings) -> tuple[str, int, str] | None:
    """The (start, days, scale) of the data set the last demo generated, if any."""
    path = settings.home / "generator_manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    return manifest["start"], manifest["days"], manifest["scale"]


def embedded(settings: Settings) -> bool:
    """Whether the catalog, warehouse, landing zone and Dagster instance are the embedded
    defaults under ``LAKEHOUSE_HOME``: the only state the demo may empty by itself."""
    inside = [
        Path(settings.catalog_uri.removeprefix("jdbc:sqlite:"))
        if settings.catalog_uri.startswith("jdbc:sqlite:")
        else None,
        _local_path(settings.warehouse),
        Path(settings.landing) if "://" not in settings.landing else None,
        Path(os.environ["DAGSTER_HOME"]),
    ]
    home = settings.home.resolve()
    return all(p is not None and p.resolve().is_relative_to(home) for p in inside)


def _local_path(uri: str) -> Path | None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(uri) if not parsed.scheme else None


def reset(settings: Settings) -> None:
    """Empty the embedded lakehouse and the instance's run history for a new data set.

    Another day's demo generates a different source database and landing files under the same
    ids; mixed with the previous demo's tables, counts would no longer match the dirt the
    generator injected, and the UI would show partitions whose data is gone.
    """
    import shutil

    from dagster import DagsterInstance

    warehouse = _local_path(settings.warehouse)
    assert warehouse is not None, "only the embedded lakehouse is reset"
    catalog = open_catalog(settings)
    for namespace in NAMESPACES:
        if (namespace,) not in catalog.list_namespaces():
            continue
        for identifier in catalog.list_tables(namespace):
            catalog.drop_table(identifier)
    for namespace in NAMESPACES:
        shutil.rmtree(warehouse / namespace, ignore_errors=True)
    shutil.rmtree(settings.landing, ignore_errors=True)
    # The stream's checkpoint goes with its tables (spark_jobs/stream.py refuses one alone).
    shutil.rmtree(settings.home / "streams", ignore_errors=True)
    with DagsterInstance.get() as instance:
        instance.wipe()


def step_times(run_id: str) -> dict[str, float]:
    """Wall time per step (``silver_clickstream``, ``gold_marts``, ...), as Dagster recorded
    it for the run."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        return {
            step.step_key: step.end_time - step.start_time
            for step in instance.get_run_step_stats(run_id)
            if step.start_time and step.end_time
        }


def by_stage(steps: dict[str, float]) -> dict[str, float]:
    """Step times summed per layer, the quality report and the other checks."""
    per_layer: dict[str, float] = defaultdict(float)
    for key, seconds in steps.items():
        layer = key.split("_")[0]
        if key == data_quality_daily.op.name:
            layer = "quality"
        elif layer not in NAMESPACES:
            layer = "checks"  # freshness, column schema
        per_layer[layer] += seconds
    return dict(per_layer)


def stage_times(run_id: str) -> dict[str, float]:
    """Wall time per layer, from the step timings Dagster recorded for the run."""
    return by_stage(step_times(run_id))


def report(settings: Settings) -> None:
    catalog = open_catalog(settings)
    manifest = json.loads((settings.home / "generator_manifest.json").read_text())
    for layer in NAMESPACES:
        print(f"\n{layer}")
        for _, table in sorted(catalog.list_tables(layer)):
            rows = catalog.load_table(f"{layer}.{table}").scan().count()
            print(f"  {layer}.{table:<26} {rows:>10,} rows")
    print("\nquarantine by rule (rows)")
    for _, table in sorted(catalog.list_tables("silver")):
        if not table.endswith("_quarantine"):
            continue
        frame = catalog.load_table(f"silver.{table}").scan().to_polars()
        if frame.is_empty():
            print(f"  silver.{table}: none")
            continue
        by_rule = frame.explode("rules").group_by("rules").len()
        by_rule = by_rule.sort(["len", "rules"], descending=[True, False])
        rules = ", ".join(f"{r} {n}" for r, n in by_rule.iter_rows())
        print(f"  silver.{table}: {frame.height} rows ({rules})")
    injected = defaultdict(int)
    for sources in manifest["per_day"].values():
        for source, counts in sources.items():
            for kind, n in counts.items():
                if kind not in ("rows", "lines", "events", "late"):
                    injected[f"{source}.{kind}"] += n
    print(
        "  injected by the generator: " + ", ".join(f"{k} {v}" for k, v in sorted(injected.items()))
    )
    quality = catalog.load_table("gold.data_quality_daily").scan().to_polars()
    print("\ngold.data_quality_daily: score per day (100 = every check passed, a warning half)")
    overall = quality.filter(pl.col("table_name") == "all").sort("day")
    for row in overall.iter_rows(named=True):
        print(
            f"  {row['day']}  score {row['score']:5.1f}  passed {row['checks_passed']:3}"
            f"  warned {row['checks_warned']:2}  failed {row['checks_failed']}"
            f"  quarantined {row['rows_quarantined']:,}"
        )
    sales = catalog.load_table("gold.agg_daily_sales").scan().to_polars()
    print("\ngold.agg_daily_sales: top 10 by revenue")
    with pl.Config(tbl_rows=10, tbl_cols=12, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        print(sales.sort(["revenue", "order_date"], descending=[True, False]).head(10))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--start",
        type=lambda text: date.fromisoformat(text) if text else None,
        default=None,
        help="first day (default: the DAYS days that end yesterday)",
    )
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    args = parser.parse_args(argv)
    args.start = args.start or default_start(args.days)
    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster"))
    last = args.start + timedelta(days=args.days - 1)

    if last > yesterday():
        sys.exit(
            f"error: {args.days} days from {args.start} end on {last}, after yesterday "
            f"({yesterday()}), the last daily partition: pick fewer days or an earlier START"
        )
    before = previous_demo(settings)
    if before not in (None, (args.start.isoformat(), args.days, args.scale)):
        if not embedded(settings):
            sys.exit(f"error: the lakehouse holds another demo's data ({before[0]}, {before[1]} "
                     "days) and is not the embedded default under LAKEHOUSE_HOME: empty it, or "
                     "set LAKEHOUSE_HOME to a new folder")  # fmt: skip
        print(f"the lakehouse holds another demo's data ({before[0]}, {before[1]} days, "
              f"{before[2]}): emptying it and the run history first")  # fmt: skip
        reset(settings)
    timings = {}
    began = time.monotonic()
    generate(settings, args.start, args.days, args.scale)
    timings["generate"] = time.monotonic() - began
    print(
        f"generated {args.days} days ({args.scale}) from {args.start} in {timings['generate']:.1f}s"
    )

    began = time.monotonic()
    log = settings.home / "logs" / f"demo-{JOB}.log"
    print(f"running {JOB} for {args.start}..{last} as one run (log: {log}) ...")
    run_id = run_job(settings, JOB, args.start, last)
    timings["dagster run"] = time.monotonic() - began
    report(settings)
    print("\nwall time")
    for stage, seconds in {**timings, **stage_times(run_id)}.items():
        print(f"  {stage:<12} {seconds:6.1f}s")
    print(f"\nrun {run_id} is in {os.environ['DAGSTER_HOME']}: `make dev` shows it in the UI")


if __name__ == "__main__":
    main()
