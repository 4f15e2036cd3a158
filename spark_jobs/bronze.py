"""Bronze: the sources as they were, plus lineage. Nothing is parsed, fixed or dropped here.

spark-submit spark_jobs/bronze.py --date 2026-01-01
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spark_jobs import storage  # noqa: E402
from spark_jobs.settings import Settings  # noqa: E402
from spark_jobs.window import DayWindow  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PARTITION_COLUMN = "_partition_date"


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    rows_per_day: dict[str, int]
    snapshot_id: int | None


def with_lineage(df: DataFrame, source: str, run_id: str) -> DataFrame:
    """Add where a row came from, when it was ingested and by which run."""
    from pyspark.sql import functions as F

    return df.withColumns(
        {
            "_source": F.lit(source),
            "_ingested_at": F.current_timestamp(),
            "_run_id": F.lit(run_id),
        }
    )


def extracted_rows(df: DataFrame) -> DataFrame:
    """Source rows with the day they belong to: the day of their ``updated_at``."""
    from pyspark.sql import functions as F

    return df.withColumn(PARTITION_COLUMN, F.to_date(F.col("updated_at")))


def rows_per_day(df: DataFrame, column: str = PARTITION_COLUMN) -> dict[str, int]:
    return {str(r[0]): r[1] for r in df.groupBy(column).count().orderBy(column).collect()}


def write_bronze(df: DataFrame, table: str, window: DayWindow) -> WriteResult:
    name = storage.table_name("bronze", table)
    df = df.cache()
    try:
        storage.replace_window(df, name, PARTITION_COLUMN, window)
        per_day = rows_per_day(df)
    finally:
        df.unpersist()
    return WriteResult(
        name, sum(per_day.values()), per_day, storage.latest_snapshot_id(df.sparkSession, name)
    )


def extract_source_table(
    spark: SparkSession, settings: Settings, table: str, window: DayWindow, run_id: str
) -> WriteResult:
    """Incrementally extract one operational table for the window into Bronze."""
    rows = storage.read_source_table(spark, settings, table, window)
    return write_bronze(with_lineage(extracted_rows(rows), f"db.{table}", run_id), table, window)


def ingest_landing(
    spark: SparkSession, settings: Settings, source: str, table: str, window: DayWindow, run_id: str
) -> WriteResult:
    """Land every raw line of the window's files into Bronze, malformed ones included."""
    lines = storage.read_landing_lines(spark, settings, source, window)
    return write_bronze(with_lineage(lines, f"landing.{source}", run_id), table, window)


LANDING_TABLES = {"clickstream": "clickstream", "inventory": "inventory_events"}


def run(
    spark: SparkSession, settings: Settings, window: DayWindow, run_id: str
) -> list[WriteResult]:
    results = [
        extract_source_table(spark, settings, table, window, run_id)
        for table in storage.SOURCE_TABLES
    ]
    results += [
        ingest_landing(spark, settings, source, table, window, run_id)
        for source, table in LANDING_TABLES.items()
    ]
    return results


def main(argv: list[str] | None = None) -> None:
    from spark_jobs.cli import run_job

    run_job("bronze", run, argv)


if __name__ == "__main__":
    main()
