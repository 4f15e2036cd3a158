"""Timing claims, measured side by side in one go (`make benchmark`; never a timed test).

    python -m tools.benchmark [--scales tiny,small,medium,large] [--backfill-days 5]

Each measurement starts from an empty lakehouse in a throwaway home (the next day's, from one
that ran the day before), on the embedded default (local Spark, SQLite catalog), with the data
generated beforehand and not timed:
1. one day through Dagster (the main job, whose last step is the quality report, from the CLI
   as the daemon runs it) at each scale: wall time, time per stage from Dagster's step stats, peak
   resident memory of the whole process tree (sampled from /proc; Python and every JVM), JVMs
   started;
2. one bare `spark-submit` of a trivial job: the floor any Spark run pays;
3. on the last scale's day, the shape this project replaces: one `spark-submit` per table,
   then `dbt run` and `dbt test` (12 processes, each with a Spark of its own, one after
   another);
4. on the same day, a single-node reference: DuckDB recomputes every Gold model from Silver
   (`tests/reconcile.py`, the end-to-end test's second engine);
5. an N-day backfill at `small` as one run, against N one-day runs;
6. at tiny and at the last scale's, the next day: a lakehouse's second day, in a home of its
   own where the first ran before (not measured), as a day runs every morning.
It writes BENCHMARKS.md (tables, ratios, the machine, the commit) and deployment/benchmarks.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from spark_jobs.settings import REPO_ROOT, Settings
from tools.demo import JOB as MAIN
from tools.demo import by_stage, run_job, step_times
from tools.generate import SCALES, generate
from tools.proctree import TreeSampler

DAY = date(2026, 5, 4)
BIN = Path(sys.executable).parent
SPARK_HOME = str(Path(__import__("pyspark").__file__).parent)  # `spark-submit` needs it
STAGES = ("bronze", "silver", "gold", "checks", "quality", "overhead")
# Every command's output, kept after the throwaway homes are gone (under the user's own home).
LOGS = Settings.from_env().home / "benchmark-logs"


@dataclass
class Measure:
    """One measured command or run: its wall time, memory and JVMs, and its stages."""

    name: str
    wall_s: float = 0.0
    peak_rss_gb: float = 0.0
    jvms: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # per Dagster step, summed over runs
    note: str = ""
    sampled: bool = True  # memory and JVMs measured (not for what runs in this process)


@contextmanager
def fresh_home() -> Iterator[Settings]:
    """An empty lakehouse and Dagster instance, for this process and the commands it runs."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as home:
        dagster = Path(home, "dagster")
        dagster.mkdir()
        shutil.copy(REPO_ROOT / "deployment" / "dagster.yaml", dagster / "dagster.yaml")
        os.environ.update(LAKEHOUSE_HOME=home, DAGSTER_HOME=str(dagster))
        try:
            yield Settings.from_env()
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextmanager
def measured(measure: Measure) -> Iterator[None]:
    """Wall time, peak memory of the process tree (this process excluded) and JVMs started."""
    began = time.perf_counter()
    with TreeSampler(os.getpid(), include_root=False) as tree:
        yield
    measure.wall_s += time.perf_counter() - began
    measure.peak_rss_gb = max(measure.peak_rss_gb, tree.peak_rss_bytes / 2**30)
    measure.jvms += len(tree.jvms_started)


def run(command: list[str], name: str, env: dict[str, str] | None = None) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(
            command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return done.returncode


def through_dagster(name: str, settings: Settings, first: date, last: date, runs: str) -> Measure:
    """The main job (its last step: the quality report) over [first, last], as one run or
    (``each``) one run per day."""
    measure = Measure(name)
    spans = [(first, last)]
    if runs == "each":
        spans = [
            (first + timedelta(d), first + timedelta(d)) for d in range((last - first).days + 1)
        ]
    for start, end in spans:
        with measured(measure):
            began = time.perf_counter()
            main = run_job(settings, MAIN, start, end, source="make benchmark")
            main_s = time.perf_counter() - began
        steps = step_times(main)  # from Dagster's step stats
        for key, seconds in steps.items():
            measure.steps[key] = measure.steps.get(key, 0.0) + seconds
        stages = by_stage(steps)  # per layer and the report
        stages["overhead"] = main_s - sum(stages.values())
        for stage, seconds in stages.items():
            measure.stages[stage] = measure.stages.get(stage, 0.0) + seconds
    return measure


def events_of(settings: Settings, day: date | None = None) -> int:
    """Clickstream lines generated: on ``day``, or on every day."""
    per_day = json.loads((settings.home / "generator_manifest.json").read_text())["per_day"]
    days = [per_day[day.isoformat()]] if day else per_day.values()
    return sum(d["clickstream"]["lines"] for d in days)


def bare_submit() -> Measure:
    """A trivial job through `spark-submit`: what every JVM a run starts costs at least."""
    measure = Measure("bare spark-submit (spark.range(1).count())")
    with fresh_home() as settings:
        script = settings.home / "trivial.py"
        script.write_text(
            "from pyspark.sql import SparkSession\n"
            "SparkSession.builder.master('local[*]').getOrCreate().range(1).count()\n"
        )
        with measured(measure):
            env = {"SPARK_HOME": SPARK_HOME, "PYSPARK_PYTHON": sys.executable}
            if run([str(BIN / "spark-submit"), str(script)], "trivial", env):
                measure.note = f"failed (see {LOGS / 'trivial.log'})"
    return measure


def seed_shape(settings: Settings, day: date) -> Measure:
    """What this project replaces, on the day already generated in ``settings``' home: a
    `spark-submit` per table (one operator per task, each its own JVM), Bronze's then Silver's
    in dependency order, then `dbt run` and `dbt test` with dbt's own Spark.

    One after another, with no scheduler between them: an Airflow would add its gap between
    tasks, and may run independent tasks side by side (less wall time, more memory at once).
    """
    from spark_jobs.cli import layer_tables
    from spark_jobs.session import write_spark_defaults

    measure = Measure("seed shape: spark-submit per table, dbt run, dbt test")
    env = {
        "SPARK_CONF_DIR": str(write_spark_defaults(settings)),
        "PYTHONPATH": str(REPO_ROOT),
        "SPARK_HOME": SPARK_HOME,
        "PYSPARK_PYTHON": sys.executable,
    }
    dbt_vars = json.dumps(
        {"start_date": day.isoformat(), "end_date": (day + timedelta(1)).isoformat()}
    )
    dbt = [str(BIN / "dbt")]
    where = ["--project-dir", "dbt_project", "--profiles-dir", "dbt_project", "--target", "session"]
    tasks = [  # (stage, what, command)
        (layer, f"{layer}.{table}", [
            str(BIN / "spark-submit"), "spark_jobs/cli.py", layer, "--date", str(day),
            "--table", table,
        ])
        for layer in ("bronze", "silver")
        for table in layer_tables(layer)
    ]  # fmt: skip
    tasks += [
        ("gold", "dbt run", [*dbt, "run", *where, "--vars", dbt_vars]),
        ("checks", "dbt test", [*dbt, "test", *where, "--vars", dbt_vars]),
    ]
    failed = []
    for stage, what, command in tasks:
        began = time.perf_counter()
        with measured(measure):
            if run(command, "seed", env):
                failed.append(what)
        measure.stages[stage] = measure.stages.get(stage, 0.0) + time.perf_counter() - began
    measure.note = f"{len(tasks)} processes"
    if failed:
        measure.note += f"; failed: {', '.join(failed)} (see {LOGS / 'seed.log'})"
    return measure


def single_node(settings: Settings) -> Measure:
    """DuckDB recomputes all of Gold from Silver, reading it through pyiceberg."""
    from lakehouse_assets.resources.catalog import open_catalog
    from tests import reconcile

    measure = Measure("single node: DuckDB recomputes Gold from Silver", sampled=False)
    began = time.perf_counter()
    models = reconcile.recompute(open_catalog(settings))
    measure.wall_s = time.perf_counter() - began
    measure.note = f"{len(models)} models, {sum(len(rows) for rows in models.values()):,} rows"
    return measure


def one_day(
    scale: str, then: Callable[[Settings], dict[str, Measure]] | None = None
) -> dict[str, Measure]:
    """A lakehouse's first day at ``scale``, and what ``then`` measures on it, by name."""
    with fresh_home() as settings:
        generate(settings, DAY, 1, scale)
        measure = through_dagster(f"one day, {scale}", settings, DAY, DAY, "one")
        measure.note = f"{events_of(settings):,} events"
        return {measure.name: measure, **(then(settings) if then else {})}


def against_others(settings: Settings) -> dict[str, Measure]:
    """On the day in ``settings``' home: the seed shape, and DuckDB's Gold."""
    return {"seed": seed_shape(settings, DAY), "duckdb": single_node(settings)}


def next_day(scale: str) -> Measure:
    """The second day of a lakehouse at ``scale``, after its first (not measured): a day as
    it runs every morning, on tables that exist (dbt's incremental path and kept parse,
    Silver's earlier days). Two days generated together: not the data of ``one_day``."""
    after = DAY + timedelta(1)
    with fresh_home() as settings:
        generate(settings, DAY, 2, scale)
        run_job(settings, MAIN, DAY, DAY, source="make benchmark")
        measure = through_dagster(f"the next day, {scale}", settings, after, after, "one")
        measure.note = f"{events_of(settings, after):,} events; the day before run first"
        return measure


def backfill(days: int) -> list[Measure]:
    last = DAY + timedelta(days - 1)
    with fresh_home() as settings:
        generate(settings, DAY, days, "small")
        together = through_dagster(
            f"{days}-day backfill, small, one run", settings, DAY, last, "one"
        )
    with fresh_home() as settings:
        generate(settings, DAY, days, "small")
        apart = through_dagster(f"{days} one-day runs, small", settings, DAY, last, "each")
    return [together, apart]


# ------------------------------------------------------------------------------- report
def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, commit {commit or 'unknown'}"


def table(measures: list[Measure]) -> list[str]:
    lines = [
        "| what | wall s | " + " | ".join(STAGES) + " | peak RSS GiB | JVMs | note |",
        "|---|---:|" + "---:|" * len(STAGES) + "---:|---:|---|",
    ]
    for m in measures:
        stages = " | ".join(f"{m.stages[s]:.1f}" if s in m.stages else "" for s in STAGES)
        tree = f"{m.peak_rss_gb:.2f} | {m.jvms}" if m.sampled else "in process | 0"
        lines.append(f"| {m.name} | {m.wall_s:.1f} | {stages} | {tree} | {m.note} |")
    return lines


def ratios(by_name: dict[str, Measure], compared: str, days: int) -> list[str]:
    lines = []
    bare = by_name.get("bare")
    tiny = by_name.get("one day, tiny")
    if bare and tiny:
        lines.append(
            f"- Fixed overhead: a tiny day (the main job, quality report included) takes "
            f"{tiny.wall_s:.1f} s, {tiny.wall_s / bare.wall_s:.1f}x one bare spark-submit "
            f"({bare.wall_s:.1f} s)."
        )
    for scale in dict.fromkeys(("tiny", compared)):  # each once
        first, after = by_name.get(f"one day, {scale}"), by_name.get(f"the next day, {scale}")
        if first and after:
            lines.append(
                f"- A lakehouse's next {scale} day (its second, as days run every morning): "
                f"{after.wall_s:.1f} s; a first day: {first.wall_s:.1f} s."
            )
    last, seed = by_name.get(f"one day, {compared}"), by_name.get("seed")
    if last and seed:
        lines.append(
            f"- {compared} day: {last.wall_s:.1f} s through Dagster against {seed.wall_s:.1f} s "
            f"for the seed shape, a JVM per table ({seed.wall_s / last.wall_s:.2f}x faster)."
        )
    large, xlarge = by_name.get("one day, large"), by_name.get("one day, xlarge")
    if tiny and large and xlarge and large.wall_s > tiny.wall_s:  # beyond a tiny day's cost
        grew = (xlarge.wall_s - tiny.wall_s) / (large.wall_s - tiny.wall_s)
        lines.append(
            f"- xlarge day (10x large's events): {xlarge.wall_s:.1f} s, peak RSS "
            f"{xlarge.peak_rss_gb:.2f} GiB; its variable part is {grew:.1f}x large's."
        )
    duck = by_name.get("duckdb")
    if last and duck:
        gold = last.stages.get("gold", 0.0)
        lines.append(
            f"- Gold alone: {gold:.1f} s on Spark and dbt, "
            f"{duck.wall_s:.1f} s for DuckDB on one node."
        )
    together, apart = by_name.get("backfill"), by_name.get("apart")
    if together and apart:
        lines.append(
            f"- {days}-day backfill as one run: {together.wall_s:.1f} s, against "
            f"{apart.wall_s:.1f} s for {days} one-day runs ({apart.wall_s / together.wall_s:.2f}x)."
        )
    return lines


GB = 1e9 / 2**30  # the GB (10^9 bytes) in GiB, the unit of the table


def targets(by_name: dict[str, Measure], days: int) -> list[str]:
    """The performance issue's targets against this run's figures: each met or not.

    Each is checked only when its rows were measured (``--scales`` may leave some out)."""
    rows: list[tuple[str, str, bool]] = []

    def judge(what: str, value: float, unit: str, digits: int, met: Callable[[float], bool]):
        shown = round(value, digits)  # judged as shown: "5.0x" is met, whatever it rounded
        rows.append((what, f"{shown:.{digits}f}{unit}", met(shown)))

    get = by_name.get
    bare, tiny, large = get("bare"), get("one day, tiny"), get("one day, large")
    seed, after, xlarge = get("seed"), get("the next day, large"), get("one day, xlarge")
    if tiny:
        judge("a tiny day (main job, quality report) ≤ 30 s", tiny.wall_s, " s", 1,
              lambda v: v <= 30)  # fmt: skip
    if tiny and bare:
        judge("a tiny day ≤ 5x one bare spark-submit", tiny.wall_s / bare.wall_s, "x", 1,
              lambda v: v <= 5)  # fmt: skip
    runs = [m for name, m in by_name.items() if name.startswith(("one day", "the next day"))]
    if runs:
        most = max(m.jvms for m in runs)
        rows.append(("one JVM a day's run (dbt starts none)", f"at most {most}", most == 1))
    if large:
        judge("a 1 M-event day ≤ 75 s", large.wall_s, " s", 1, lambda v: v <= 75)
        clicks = large.steps.get("silver_clickstream")
        if clicks is not None:
            judge("`silver_clickstream` ≤ 20 s at 1 M events", clicks, " s", 1, lambda v: v <= 20)
        peak = max(m.peak_rss_gb for m in (large, after) if m)
        judge("peak RSS of the tree ≤ 3 GB at 1 M events (first and next day)", peak / GB,
              " GB", 2, lambda v: v <= 3)  # fmt: skip
    if large and seed:
        judge("a 1 M-event day ≥ 3x faster than the seed shape (a submit per table)",
              seed.wall_s / large.wall_s, "x", 2, lambda v: v >= 3)  # fmt: skip
    if xlarge:
        judge("an xlarge day within 8 GB", xlarge.peak_rss_gb / GB, " GB", 2, lambda v: v <= 8)
        if tiny and large and large.wall_s > tiny.wall_s:
            grew = (xlarge.wall_s - tiny.wall_s) / (large.wall_s - tiny.wall_s)
            judge("an xlarge day's variable part ≤ 10x the large day's", grew, "x", 1,
                  lambda v: v <= 10)  # fmt: skip
    together, apart = get("backfill"), get("apart")
    if together and apart and tiny:
        # The fixed overhead: a tiny day; a day's variable part: what each of the same days,
        # run one a run, took beyond it (one small day less a tiny one swung below 0).
        variable = max(apart.wall_s / days - tiny.wall_s, 0.0)
        bound = round(tiny.wall_s + 1.3 * days * variable, 1)
        judge(f"a {days}-day backfill ≤ fixed overhead + 1.3 x {days} x a day's variable part "
              f"(≤ {bound:.1f} s)", together.wall_s, " s", 1, lambda v: v <= bound)  # fmt: skip
    lines = ["| target | this run | met |", "|---|---:|---|"]
    lines += [f"| {what} | {figure} | {'yes' if met else '**no**'} |" for what, figure, met in rows]
    return lines if rows else []


def chart(measures: list[Measure], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [m for m in measures if m.stages]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(shown) + 1.5))
    left = [0.0] * len(shown)
    for stage in STAGES:
        widths = [max(m.stages.get(stage, 0.0), 0.0) for m in shown]
        ax.barh([m.name for m in shown], widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("Time per stage")
    ax.legend(ncols=len(STAGES), loc="lower center", bbox_to_anchor=(0.5, 1.06), fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scales", default="tiny,small,medium,large")
    parser.add_argument("--backfill-days", type=int, default=5, help="0: skip the backfill")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    shutil.rmtree(LOGS, ignore_errors=True)
    scales = list(dict.fromkeys(args.scales.split(",")))  # each once, in the order given
    if unknown := set(scales) - set(SCALES):
        parser.error(f"unknown scales: {', '.join(sorted(unknown))}; known: {', '.join(SCALES)}")
    by_name: dict[str, Measure] = {"bare": bare_submit()}
    # The seed shape and DuckDB run on the large day (the yardstick), else the last.
    compared = "large" if "large" in scales else scales[-1]
    for scale in scales:
        found = one_day(scale, against_others if scale == compared else None)
        if scale in ("tiny", compared):
            found[f"the next day, {scale}"] = next_day(scale)
        by_name.update(found)
        print("\n".join(table(list(found.values()))[2:]), flush=True)
    if args.backfill_days:
        together, apart = backfill(args.backfill_days)
        by_name.update(backfill=together, apart=apart)
    measures = list(by_name.values())  # in the order measured
    picture = args.out.parent / "deployment" / "benchmarks.png"  # beside the other pictures
    picture.parent.mkdir(parents=True, exist_ok=True)
    chart(measures, picture)
    text = [
        "# Benchmarks",
        "",
        f"Written by `make benchmark` (`python -m tools.benchmark --scales {args.scales} "
        f"--backfill-days {args.backfill_days}`) on {date.today()}: {machine()}, "
        f"SPARK_DRIVER_MEMORY={Settings.from_env().driver_memory}.",
        "Each row starts from an empty lakehouse on the embedded default (a next day's: from "
        "one that ran the day before, generated together with it, so not the data of the "
        "first-day row); the data is generated first and not timed. Stages come from "
        "Dagster's step stats (`overhead`: the main run's wall time outside its steps: CLI, "
        "code location, Spark start; `quality`: the quality report, the run's last step). "
        "Peak RSS is the whole process tree (Python and JVMs), sampled from /proc every 0.25 s.",
        "",
        *table(measures),
        "",
        "## Ratios",
        "",
        *ratios(by_name, compared, args.backfill_days),
        "",
        "## The performance issue's targets",
        "",
        *targets(by_name, args.backfill_days),
        "",
        f"![time per stage]({picture.relative_to(args.out.parent)})",
        "",
    ]
    args.out.write_text("\n".join(text))
    print(f"\nwrote {args.out} and {picture}")


if __name__ == "__main__":
    main()
