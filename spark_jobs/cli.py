"""The command line every job shares: ``spark-submit spark_jobs/<job>.py --date YYYY-MM-DD``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence

from spark_jobs.session import build_session
from spark_jobs.settings import LakehouseSetupError, Settings
from spark_jobs.window import parse_args


def run_job(name: str, run: Callable, argv: Sequence[str] | None = None) -> None:
    window = parse_args(f"{name}: run the {name} layer for a day or a range of days", argv)
    try:
        settings = Settings.from_env()
        spark = build_session(settings, app_name=f"lakehouse-{name}")
    except LakehouseSetupError as exc:
        sys.exit(f"error: {exc}")
    for result in run(spark, settings, window, f"spark-submit-{uuid.uuid4().hex[:12]}"):
        print(f"{result.table}: {result.rows} rows, snapshot {result.snapshot_id}")
