"""Timing claims, measured: `make benchmark` (never a timed test).

    python -m tools.benchmark [--scale large] [--pipeline-days 3]

1. The generator at a scale (large = 1,000,000 clickstream events and 50,000 orders a day).
2. Optionally, the main job over N days of the `small` scale as one Dagster run, in a
   throwaway LAKEHOUSE_HOME, with the wall time per layer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from spark_jobs.settings import REPO_ROOT, Settings
from tools.generate import SCALES, generate


def time_generator(scale: str, days: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        settings = replace(
            Settings.from_env(),
            home=Path(home),
            source_url=f"jdbc:sqlite:{home}/source.db",
            landing=f"{home}/landing",
        )
        began = time.perf_counter()
        manifest = generate(settings, date(2026, 1, 1), days, scale)
        seconds = time.perf_counter() - began
    events = sum(d["clickstream"]["lines"] for d in manifest.per_day.values())
    orders = sum(d["orders"]["rows"] for d in manifest.per_day.values())
    print(
        f"generator  scale={scale} days={days}: {events:,} clickstream lines, "
        f"{orders:,} orders in {seconds:.1f}s ({events / seconds:,.0f} lines/s)"
    )


def time_pipeline(days: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LAKEHOUSE_HOME": home, "DAGSTER_HOME": f"{home}/dagster"}
        Path(home, "dagster").mkdir()
        cmd = [sys.executable, "-m", "tools.demo", "--days", str(days)]
        began = time.perf_counter()
        out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if out.returncode:
            sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
        timing = out.stdout[out.stdout.index("wall time") :].splitlines()[:8]
        print(f"pipeline   {days} days of 'small' as one run: {seconds:.0f}s in all")
        print("\n".join("  " + line for line in timing))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--days", type=int, default=1, help="days for the generator")
    parser.add_argument("--pipeline-days", type=int, default=0, help="0: skip the pipeline")
    args = parser.parse_args(argv)
    time_generator(args.scale, args.days)
    if args.pipeline_days:
        time_pipeline(args.pipeline_days)


if __name__ == "__main__":
    main()
