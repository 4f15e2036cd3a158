"""The command line of the Spark jobs, one per layer, as spark-submit runs them:

    spark-submit spark_jobs/cli.py silver --date 2026-01-01
    spark-submit spark_jobs/cli.py bronze --start 2026-01-01 --end 2026-01-03
    spark-submit spark_jobs/cli.py silver --date 2026-01-01 --table orders

A layer runs every table of it by default (Silver's in dependency order); ``--table``
(repeatable) runs only those, by their name in the layer (``lakehouse.<layer>.<table>``).

(``make run JOB=silver ARGS="--date 2026-01-01"`` does the same with the project's Spark
configuration; the repo root must be on ``PYTHONPATH``, which ``make`` sets.)
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Sequence

from spark_jobs.registry import SOURCES, Source, in_dependency_order

JOBS = ("bronze", "silver")


def layer_tables(layer: str) -> dict[str, Source]:
    """The layer's tables, by their name in it, each with its source, in dependency order
    (a Silver table after those it reads)."""
    return {getattr(source, layer): source for source in in_dependency_order()}


def chosen_sources(layer: str, tables: Sequence[str] | None) -> tuple[Source, ...]:
    """The sources whose tables of ``layer`` are in ``tables`` (every source when none is
    named)."""
    if not tables:
        return SOURCES
    return tuple(source for name, source in layer_tables(layer).items() if name in tables)


def run_job(name: str, argv: Sequence[str] | None = None) -> None:
    from spark_jobs.session import build_session
    from spark_jobs.settings import LakehouseSetupError, Settings
    from spark_jobs.window import parse_window, window_parser

    parser = window_parser(f"{name}: run the {name} layer for a day or a range of days")
    parser.add_argument(
        "--table",
        action="append",
        choices=sorted(layer_tables(name)),
        help="run only this table of the layer (repeat for more); default: every table",
    )
    window, args = parse_window(parser, argv)
    sources = chosen_sources(name, args.table)
    try:
        settings = Settings.from_env()
        spark = build_session(settings, app_name=f"lakehouse-{name}")
    except LakehouseSetupError as exc:
        sys.exit(f"error: {exc}")
    job = importlib.import_module(f"spark_jobs.{name}")
    run_id = f"spark-submit-{uuid.uuid4().hex[:12]}"
    for result in job.run(spark, settings, window, run_id, sources):
        print(f"{result.table}: {result.rows} rows, snapshot {result.snapshot_id}")


def reset_stream() -> None:
    """Drop the inventory stream's tables and checkpoint together; its next run takes every
    landed inventory object again, as one micro-batch (so with no watermark yet: events the
    old stream quarantined as late are counted this time)."""
    from spark_jobs import stream
    from spark_jobs.session import build_session
    from spark_jobs.settings import LakehouseSetupError, Settings

    try:
        settings = Settings.from_env()
        spark = build_session(settings, app_name="lakehouse-stream-reset")
    except LakehouseSetupError as exc:
        sys.exit(f"error: {exc}")
    stream.reset(spark, settings)
    print(f"dropped {', '.join(stream.TABLES)} and {stream.StreamPaths.of(settings).checkpoint}")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["stream-reset"]:
        reset_stream()
        return
    if not args or args[0] not in JOBS:
        sys.exit(f"usage: spark_jobs/cli.py <{'|'.join(JOBS)}> --date YYYY-MM-DD")
    run_job(args[0], args[1:])


if __name__ == "__main__":
    main()
