"""Reading the sources and writing Iceberg tables. Transforms live in bronze.py and silver.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyarrow import fs as pafs

from spark_jobs.settings import CATALOG, LakehouseSetupError, Settings
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

SOURCE_TABLES = ("customers", "products", "orders")
LANDING_SOURCES = ("clickstream", "inventory")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

JDBC_DRIVERS = {"jdbc:sqlite:": "org.sqlite.JDBC", "jdbc:postgresql:": "org.postgresql.Driver"}

LANDING_LINE_SCHEMA = (
    "_partition_date date, _source_file string, _line_number long, raw_line string"
)


def table_name(layer: str, table: str) -> str:
    """``lakehouse.<layer>.<table>``, for identifiers that come only from this codebase."""
    for part in (layer, table):
        if not _IDENT.match(part):
            raise ValueError(f"not a valid table identifier: {part!r}")
    return f"{CATALOG}.{layer}.{table}"


# ------------------------------------------------------------------ operational database
def _jdbc_driver(url: str) -> str:
    for prefix, driver in JDBC_DRIVERS.items():
        if url.startswith(prefix):
            return driver
    raise LakehouseSetupError(f"unsupported source URL {url}: use jdbc:sqlite: or jdbc:postgresql:")


def day_predicates(window: DayWindow, column: str = "updated_at") -> list[str]:
    """One JDBC predicate (hence one Spark partition) per day of the window.

    The literals are formatted from ``datetime.date`` objects, never from user text, so
    nothing a user types reaches the source database's SQL.
    """
    if not _IDENT.match(column):
        raise ValueError(f"not a valid column: {column!r}")
    out = []
    for day in window.days:
        lo = datetime.combine(day, time()).strftime("%Y-%m-%d %H:%M:%S")
        hi = datetime.combine(day + timedelta(days=1), time()).strftime("%Y-%m-%d %H:%M:%S")
        out.append(f"{column} >= '{lo}' AND {column} < '{hi}'")
    return out


def read_source_table(
    spark: SparkSession, settings: Settings, table: str, window: DayWindow
) -> DataFrame:
    """Rows of an operational table whose ``updated_at`` falls in the window (incremental)."""
    if table not in SOURCE_TABLES:
        raise ValueError(f"unknown source table {table!r}; expected one of {SOURCE_TABLES}")
    props = {"driver": _jdbc_driver(settings.source_url)}
    if settings.source_user:
        props |= {"user": settings.source_user, "password": settings.source_password}
    return spark.read.jdbc(
        settings.source_url, table, predicates=day_predicates(window), properties=props
    )


# ------------------------------------------------------------------ landing zone
def landing_filesystem(landing: str, s3_endpoint_url: str = "") -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and root path for a local folder or an ``s3://bucket/prefix``."""
    if landing.startswith("s3://"):
        bucket_prefix = landing.removeprefix("s3://").rstrip("/")
        if s3_endpoint_url:
            scheme, _, host = s3_endpoint_url.partition("://")
            return pafs.S3FileSystem(endpoint_override=host, scheme=scheme), bucket_prefix
        return pafs.S3FileSystem(), bucket_prefix
    return pafs.LocalFileSystem(), landing.rstrip("/")


def list_landing_files(
    settings: Settings, source: str, window: DayWindow
) -> list[tuple[date, str]]:
    """``(day, path)`` of every ``*.jsonl`` object landed for the source in the window."""
    if source not in LANDING_SOURCES:
        raise ValueError(f"unknown landing source {source!r}; expected one of {LANDING_SOURCES}")
    filesystem, root = landing_filesystem(settings.landing, settings.s3_endpoint_url)
    found = []
    for day in window.days:
        selector = pafs.FileSelector(f"{root}/{source}/{day.isoformat()}", allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File and info.path.endswith(".jsonl"):
                found.append((day, info.path))
    return sorted(found)


def _line_reader(landing: str, s3_endpoint_url: str, uri_prefix: str):
    """A ``mapInArrow`` function that turns (day, path) rows into one row per line of text.

    It runs inside Spark tasks, so local folders and S3 (through pyarrow, since this Spark has
    no hadoop-aws) share one code path. Lines are split in C, never looped over in Python.
    """

    def read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        filesystem, _ = landing_filesystem(landing, s3_endpoint_url)
        for batch in batches:
            days = batch.column("day").to_pylist()
            paths = batch.column("path").to_pylist()
            for day, path in zip(days, paths, strict=True):
                with filesystem.open_input_stream(path) as stream:
                    text = stream.read().decode("utf-8", errors="replace")
                lines = text.split("\n")
                if lines and lines[-1] == "":
                    lines.pop()  # the newline that ends the file, not an empty record
                n = len(lines)
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.repeat(pa.scalar(day, pa.date32()), n),
                        pa.repeat(pa.scalar(uri_prefix + path, pa.string()), n),
                        pa.array(np.arange(1, n + 1, dtype=np.int64)),
                        pa.array(lines, pa.string()),
                    ],
                    names=["_partition_date", "_source_file", "_line_number", "raw_line"],
                )

    return read


def read_landing_lines(
    spark: SparkSession, settings: Settings, source: str, window: DayWindow
) -> DataFrame:
    """Every line of every landed file, verbatim, with its file and line number."""
    files = list_landing_files(settings, source, window)
    uri_prefix = "s3://" if settings.landing.startswith("s3://") else "file://"
    paths = spark.createDataFrame(files, "day date, path string")
    if files:
        paths = paths.repartition(min(len(files), spark.sparkContext.defaultParallelism))
    reader = _line_reader(settings.landing, settings.s3_endpoint_url, uri_prefix)
    return paths.mapInArrow(reader, LANDING_LINE_SCHEMA)


# ------------------------------------------------------------------ Iceberg writes
def window_condition(column: str, window: DayWindow) -> Column:
    from pyspark.sql import functions as F

    return (F.col(column) >= F.lit(window.start)) & (F.col(column) < F.lit(window.end))


def ensure_table(df: DataFrame, name: str, partition_column: str | None) -> None:
    """Create the Iceberg table from the frame's schema if it does not exist yet."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    if spark.catalog.tableExists(name):
        return
    writer = df.limit(0).writeTo(name).using("iceberg").tableProperty("format-version", "2")
    if partition_column:
        writer = writer.partitionedBy(F.col(partition_column))
    writer.create()


def conform(df: DataFrame, name: str) -> DataFrame:
    """Match the table's columns: those it gained by evolution come in as NULL; new columns
    of ``df`` stay, for a write that merges the schema."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    if not spark.catalog.tableExists(name):
        return df
    target = spark.table(name).schema
    missing = {f.name: F.lit(None).cast(f.dataType) for f in target if f.name not in df.columns}
    return df.withColumns(missing) if missing else df


def allow_new_columns(spark: SparkSession, name: str) -> None:
    """Let writes that carry new columns add them to the table (Iceberg schema merge)."""
    if spark.catalog.tableExists(name):
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('write.spark.accept-any-schema'='true')")


def replace_window(df: DataFrame, name: str, partition_column: str, window: DayWindow) -> None:
    """Atomically replace exactly the window's days with ``df``; other days stay untouched.

    An overwrite by filter (not a dynamic partition overwrite), so a day that now has no rows
    is emptied rather than left with stale ones.
    """
    ensure_table(df, name, partition_column)
    df = conform(df, name)
    writer = df.writeTo(name)
    if set(df.columns) - set(df.sparkSession.table(name).columns):
        writer = writer.option("mergeSchema", "true")
    writer.overwrite(window_condition(partition_column, window))


def merge_latest(df: DataFrame, name: str, key: str, partition_column: str | None = None) -> None:
    """Upsert ``df`` by key, keeping whichever version has the later ``updated_at``.

    Rerunning an older day after a newer one never rolls a row back.
    """
    if not _IDENT.match(key):
        raise ValueError(f"not a valid key column: {key!r}")
    ensure_table(df, name, partition_column)
    view = f"merge_source_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    try:
        df.sparkSession.sql(
            f"MERGE INTO {name} t USING {view} s ON t.{key} = s.{key} "
            "WHEN MATCHED AND s.updated_at >= t.updated_at THEN UPDATE SET * "
            "WHEN NOT MATCHED THEN INSERT *"
        )
    finally:
        df.sparkSession.catalog.dropTempView(view)


def latest_snapshot_id(spark: SparkSession, name: str) -> int | None:
    from pyspark.sql import functions as F

    rows = (
        spark.table(f"{name}.snapshots")
        .orderBy(F.col("committed_at").desc())
        .select("snapshot_id")
        .limit(1)
        .collect()
    )
    return rows[0][0] if rows else None
