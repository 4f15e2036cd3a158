"""Reading the sources and writing Iceberg tables. Transforms live in bronze.py and silver/."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs
from pyspark.sql import Observation
from pyspark.sql import functions as F

from spark_jobs import registry
from spark_jobs.settings import CATALOG, LakehouseSetupError, Settings
from spark_jobs.window import DayWindow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# Each operational table and its key: the unit of "has Bronze seen this row".
SOURCE_KEYS = {s.name: s.key for s in registry.database_tables() if s.key}
LANDING_SOURCES = tuple(s.name for s in registry.landing_feeds())
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

JDBC_DRIVERS = {"jdbc:sqlite:": "org.sqlite.JDBC", "jdbc:postgresql:": "org.postgresql.Driver"}

LANDING_LINE_SCHEMA = (
    "_partition_date date, _source_file string, _landed_at timestamp, _line_number long, "
    "raw_line string, _raw_bytes binary"
)
LANDING_LINE_COLUMNS = [c.split()[0] for c in LANDING_LINE_SCHEMA.split(", ")]


def table_name(layer: str, table: str) -> str:
    """``lakehouse.<layer>.<table>``, for identifiers that come only from this codebase."""
    for part in (layer, table):
        if not _IDENT.match(part):
            raise ValueError(f"not a valid table identifier: {part!r}")
    return f"{CATALOG}.{layer}.{table}"


def local_rows(spark: SparkSession, rows: Sequence[tuple], schema: str) -> DataFrame:
    """Rows from the driver as a DataFrame made in the JVM: one JSON text, parsed there.

    ``spark.createDataFrame`` of a list (PySpark 3.5) sends the rows through a Python RDD:
    the first one a run makes starts a Python worker daemon (about 1 s), which then idled
    through the rest of the run (about 50 MB). One text, not a literal per value, keeps the
    calls to the JVM and the plan the same size however many rows there are (the stream
    lists every landed object of its feed). Dates and timestamps travel as ISO text; every
    column is nullable, as from a schema.
    """
    element = F.from_json(F.lit("{}"), f"struct<{schema}>")  # Spark reads the schema's DDL
    names = spark.range(0).select(element.alias("row")).select("row.*").columns
    rows_as_json = [dict(zip(names, row, strict=True)) for row in rows]
    text = json.dumps(rows_as_json, default=lambda value: value.isoformat())  # dates, times
    return spark.range(1).select(F.inline(F.from_json(F.lit(text), f"array<struct<{schema}>>")))


# ------------------------------------------------------------------ operational database
def _jdbc_driver(url: str) -> str:
    for prefix, driver in JDBC_DRIVERS.items():
        if url.startswith(prefix):
            return driver
    raise LakehouseSetupError(f"unsupported source URL {url}: use jdbc:sqlite: or jdbc:postgresql:")


def _usable(dialect: str, column: str) -> str:
    """SQL that is true when the change timestamp can place the row on a day."""
    # SQLite stores time as text: datetime() is NULL for text that is not a timestamp.
    return f"datetime({column}) IS NOT NULL" if dialect == "sqlite" else f"{column} IS NOT NULL"


def source_dialect(url: str) -> str:
    _jdbc_driver(url)  # one error message for an unsupported URL
    return "sqlite" if url.startswith("jdbc:sqlite:") else "postgresql"


def day_predicates(
    window: DayWindow, column: str = "updated_at", dialect: str = "postgresql"
) -> list[str]:
    """One JDBC predicate (hence one Spark partition) per day of the window.

    The literals are formatted from ``datetime.date`` objects, never from user text, so
    nothing a user types reaches the source database's SQL.
    """
    if not _IDENT.match(column):
        raise ValueError(f"not a valid column: {column!r}")
    usable = "" if dialect == "postgresql" else f"{_usable(dialect, column)} AND "
    out = []
    for day in window.days:
        lo = datetime.combine(day, time()).strftime("%Y-%m-%d %H:%M:%S")
        hi = datetime.combine(day + timedelta(days=1), time()).strftime("%Y-%m-%d %H:%M:%S")
        out.append(f"{usable}{column} >= '{lo}' AND {column} < '{hi}'")
    return out


def backlog_predicate(
    before: date, column: str = "updated_at", dialect: str = "postgresql", since: date | None = None
) -> str:
    """Rows changed before ``before`` (and on or after ``since``, when given)."""
    hi = datetime.combine(before, time()).strftime("%Y-%m-%d %H:%M:%S")
    out = f"{_usable(dialect, column)} AND {column} < '{hi}'"
    if since is not None:
        lo = datetime.combine(since, time()).strftime("%Y-%m-%d %H:%M:%S")
        out += f" AND {column} >= '{lo}'"
    return out


def unplaced_predicate(column: str = "updated_at", dialect: str = "postgresql") -> str:
    """Rows whose change timestamp is NULL or not a timestamp: no day's extraction sees them."""
    return f"NOT ({_usable(dialect, column)})" if dialect == "sqlite" else f"{column} IS NULL"


def read_source_rows(spark: SparkSession, settings: Settings, table: str, predicates: list[str]):
    """Rows of an operational table matching any of ``predicates`` (disjoint, one partition
    each)."""
    if table not in tuple(SOURCE_KEYS):
        raise ValueError(f"unknown source table {table!r}; expected one of {tuple(SOURCE_KEYS)}")
    props = {"driver": _jdbc_driver(settings.source_url)}
    if settings.source_user:
        props |= {"user": settings.source_user, "password": settings.source_password}
    return spark.read.jdbc(settings.source_url, table, predicates=predicates, properties=props)


# ------------------------------------------------------------------ landing zone
@dataclass(frozen=True)
class LandingZone:
    """A local folder or ``s3://bucket/prefix``; picklable, so Spark tasks can open it."""

    uri: str
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""

    @classmethod
    def of(cls, settings: Settings) -> LandingZone:
        return cls(
            settings.landing,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.s3_access_key,
            settings.s3_secret_key,
        )

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def root(self) -> str:
        """The path below the filesystem: ``bucket/prefix`` for S3, the folder otherwise."""
        return self.uri.removeprefix("s3://").rstrip("/") if self.is_s3 else self.uri.rstrip("/")

    def filesystem(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        options: dict = {"region": self.region}
        if self.endpoint_url:
            scheme, _, host = self.endpoint_url.partition("://")
            options |= {"endpoint_override": host, "scheme": scheme}
        if self.access_key:
            options |= {"access_key": self.access_key, "secret_key": self.secret_key}
        return pafs.S3FileSystem(**options)

    def uri_of(self, path: str) -> str:
        """The lineage name of a file: ``s3://bucket/key`` or ``file:///path``."""
        return f"s3://{path}" if self.is_s3 else Path(path).as_uri()


def day_of_object(relative_key: str) -> date | None:
    """The landing day of ``<source>/<YYYY-MM-DD>/<file>.jsonl``, or None for anything else
    (a nested folder too: Bronze lists a day's folder, not below it)."""
    parts = relative_key.split("/")
    if len(parts) != 3 or parts[0] not in LANDING_SOURCES or not parts[-1].endswith(".jsonl"):
        return None
    try:
        return date.fromisoformat(parts[1])
    except ValueError:
        return None


@dataclass(frozen=True, order=True)
class LandedFile:
    day: date
    landed_us: int  # when the object landed (S3 LastModified, a file's mtime), epoch µs
    path: str
    size: int = field(default=0, compare=False)

    @property
    def version(self) -> str:
        """Which version of the object this is: a rewritten object gets a new one."""
        return f"{self.landed_us}-{self.size}"


def list_landing_files(
    settings: Settings, source: str, window: DayWindow | None = None
) -> list[LandedFile]:
    """Every ``*.jsonl`` object landed for the source in the window (every day when None),
    in landing order."""
    if source not in LANDING_SOURCES:
        raise ValueError(f"unknown landing source {source!r}; expected one of {LANDING_SOURCES}")
    zone = LandingZone.of(settings)
    filesystem = zone.filesystem()
    folders = (
        [f"{zone.root}/{source}"]
        if window is None
        else [f"{zone.root}/{source}/{day.isoformat()}" for day in window.days]
    )
    found = []
    for folder in folders:
        selector = pafs.FileSelector(folder, allow_not_found=True, recursive=window is None)
        for info in filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            day = day_of_object(info.path[len(zone.root) + 1 :])
            if day is not None and (window is None or day in window.days):
                found.append(LandedFile(day, (info.mtime_ns or 0) // 1_000, info.path, info.size))
    return sorted(found)


UTF8_BOM = b"\xef\xbb\xbf"


def split_lines(data: bytes) -> tuple[pa.Array, pa.Array]:
    """A file's lines as text, and the original bytes of each line that is not UTF-8.

    A byte-order mark at the start of the file is not part of the first record. A line with
    invalid UTF-8 keeps its original bytes beside the replaced text, so Bronze stays lossless
    and Silver can quarantine it by name.

    Split and checked by Arrow, in C: a file of a million lines makes no million Python
    objects. (It did: two lists of them held about 0.5 GiB per Spark Python worker, which
    the worker kept for the rest of the run.) The text is ``large_string``: a file may hold
    more than the 2 GiB of text one ``string`` array can (the reader hands it on in slices).
    """
    start = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    offsets = pa.py_buffer(np.array([start, len(data)], dtype=np.int64))
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    # call_function: pyarrow makes its compute functions at import, out of type checkers' sight
    lines = pc.call_function("split_pattern", [whole], pc.SplitPatternOptions(b"\n")).flatten()
    if len(lines) and len(lines[-1].as_buffer() or b"") == 0:
        lines = lines.slice(0, len(lines) - 1)  # the newline that ends the file, not a record
    try:
        return lines.cast(pa.large_string()), pa.nulls(len(lines), pa.large_binary())
    except pa.ArrowInvalid:  # not UTF-8 somewhere in the file (the only reason this cast fails)
        pass
    # Only a file with invalid bytes gets here; such files are rare, so per line is fine.
    text, original = [], []
    for line in lines.to_pylist():
        try:
            text.append(line.decode("utf-8"))
            original.append(None)
        except UnicodeDecodeError:
            text.append(line.decode("utf-8", errors="replace"))
            original.append(line)
    return pa.array(text, pa.large_string()), pa.array(original, pa.large_binary())


READ_BATCH_LINES = 200_000  # rows per Arrow batch the reader hands Spark: bounded memory


def as_small(values: pa.Array, to: pa.DataType) -> pa.Array:
    """A slice of a ``large_string``/``large_binary`` array as ``string``/``binary`` (what
    Spark takes). A slice keeps its offsets into the whole array, and the cast checks those:
    a slice that starts past 2 GiB of text would not fit, so it is copied to start at 0."""
    return pa.concat_arrays([values]).cast(to)


def _line_reader(zone: LandingZone, batch_lines: int = READ_BATCH_LINES):
    """A ``mapInArrow`` function that turns landed files into one row per line of text.

    It runs inside Spark tasks, so local folders and S3 (through pyarrow, since this Spark has
    no hadoop-aws) share one code path. Lines are split in C, never looped over in Python.
    """

    def read(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        filesystem = zone.filesystem()
        for batch in batches:
            days = batch.column("day").to_pylist()
            landed = batch.column("landed_us").to_pylist()
            paths = batch.column("path").to_pylist()
            for day, landed_us, path in zip(days, landed, paths, strict=True):
                with filesystem.open_input_stream(path) as stream:
                    lines, original = split_lines(stream.read())
                for at in range(0, len(lines), batch_lines):
                    text = lines.slice(at, batch_lines)
                    n = len(text)
                    yield pa.RecordBatch.from_arrays(
                        [
                            pa.repeat(pa.scalar(day, pa.date32()), n),
                            pa.repeat(pa.scalar(zone.uri_of(path), pa.string()), n),
                            pa.repeat(pa.scalar(landed_us, pa.timestamp("us", tz="UTC")), n),
                            pa.array(np.arange(at + 1, at + n + 1, dtype=np.int64)),
                            as_small(text, pa.string()),
                            as_small(original.slice(at, batch_lines), pa.binary()),
                        ],
                        names=LANDING_LINE_COLUMNS,
                    )
                del lines, original
            pa.default_memory_pool().release_unused()  # the file's memory, back to the system

    return read


def read_landing_lines(
    spark: SparkSession, settings: Settings, source: str, window: DayWindow
) -> DataFrame:
    """Every line of every landed file, verbatim, with its file, landing time and line number."""
    files = list_landing_files(settings, source, window)
    paths = local_rows(
        spark,
        [(f.day, f.landed_us, f.path) for f in files],
        "day date, landed_us long, path string",
    )
    return read_landed(paths, LandingZone.of(settings), len(files))


def read_landed(files: DataFrame, zone: LandingZone, count: int) -> DataFrame:
    """The lines of the ``count`` objects ``files`` names (``day``, ``landed_us``, ``path``),
    read in parallel: what Bronze and the inventory stream both read landed files with."""
    if count:
        files = files.repartition(min(count, files.sparkSession.sparkContext.defaultParallelism))
    return files.mapInArrow(_line_reader(zone), LANDING_LINE_SCHEMA)


# ------------------------------------------------------------------ Iceberg writes
def window_condition(column: str, window: DayWindow) -> Column:
    return (F.col(column) >= F.lit(window.start)) & (F.col(column) < F.lit(window.end))


def current_table(spark: SparkSession, name: str) -> DataFrame | None:
    """The table's latest snapshot, or None when it does not exist.

    Each session's Iceberg catalog caches the tables it loaded, and a streaming query's
    micro-batches write through a session of their own: without the refresh, one session
    reads what another replaced a moment ago as it was.
    """
    if not spark.catalog.tableExists(name):
        return None
    spark.catalog.refreshTable(name)
    return spark.table(name)


WRITE_PROPERTIES = {
    # Parquet row groups small enough for one day's file to be read by every core. Iceberg
    # plans a read's tasks at row-group bounds (a small scan's splits shrink, down to 16 MB,
    # until each core has one): with one 128 MB group per file (the default), a million events
    # of one day were a single task on one core, 17 s of Silver's 40 s at 1 M events; in
    # groups of 8 MB, 12 s on two.
    "write.parquet.row-group-size-bytes": str(8 << 20),
    # Iceberg shuffles a write by partition, and a day's rows went to one task whatever their
    # size; now a day of several input tasks is split into tasks of about 32 MB of shuffled
    # data, each writing its own file (housekeeping packs a day's files later).
    "write.spark.advisory-partition-size-bytes": str(32 << 20),
}


def ensure_table(df: DataFrame, name: str, partition_column: str | None) -> None:
    """Create the Iceberg table from the frame's schema if it does not exist yet. From the
    schema alone: ``df`` is not run, so an observation on it (an extraction's figures) still
    sees its first action, the write."""
    spark = df.sparkSession
    if spark.catalog.tableExists(name):
        return
    empty = spark.createDataFrame([], df.schema)
    writer = empty.writeTo(name).using("iceberg").tableProperty("format-version", "2")
    for key, value in WRITE_PROPERTIES.items():
        writer = writer.tableProperty(key, value)
    if partition_column:
        writer = writer.partitionedBy(F.col(partition_column))
    writer.create()


def conform(df: DataFrame, name: str) -> DataFrame:
    """Match the table's columns and their order: those it gained by evolution come in as
    NULL; new columns of ``df`` stay, last, for a write that merges the schema."""
    spark = df.sparkSession
    if not spark.catalog.tableExists(name):
        return df
    target = spark.table(name).schema
    missing = {f.name: F.lit(None).cast(f.dataType) for f in target if f.name not in df.columns}
    df = df.withColumns(missing) if missing else df
    # The table's columns in the table's order, then the new ones: Iceberg matches by position.
    known = [f.name for f in target]
    return df.select(*known, *[c for c in df.columns if c not in known])


def adopt_write_properties(spark: SparkSession, name: str) -> dict[str, str]:
    """Give a table created before ``WRITE_PROPERTIES`` (or by dbt, or by hand) those of
    them it lacks, for its later writes and compactions; a value set by hand stays. Returns
    the properties set."""
    # ``name`` comes from table_name(), which admits only plain identifiers.
    have = {r.key for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    lacking = {k: v for k, v in WRITE_PROPERTIES.items() if k not in have}
    if lacking:
        pairs = ", ".join(f"'{k}'='{v}'" for k, v in lacking.items())  # constants of this module
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({pairs})")
    return lacking


def allow_new_columns(spark: SparkSession, name: str) -> None:
    """Let writes that carry new columns add them to the table (Iceberg schema merge)."""
    if spark.catalog.tableExists(name):
        # ``name`` comes from table_name(), which admits only plain identifiers.
        statement = f"ALTER TABLE {name} SET TBLPROPERTIES ('write.spark.accept-any-schema'='true')"
        spark.sql(statement)


def replace_window(df: DataFrame, name: str, partition_column: str, window: DayWindow) -> None:
    """Atomically replace exactly the window's days with ``df``; other days stay untouched.

    An overwrite by filter (not a dynamic partition overwrite), so a day that now has no rows
    is emptied rather than left with stale ones.
    """
    ensure_table(df, name, partition_column)
    df = conform(df, name)
    writer = df.writeTo(name)
    if set(df.columns) - set(df.sparkSession.table(name).columns):
        allow_new_columns(df.sparkSession, name)  # a table written by an older version
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


def insert_missing(
    df: DataFrame, name: str, keys: Sequence[str], *, replace_matched: bool = False
) -> None:
    """Add the rows of ``df`` whose key the table does not hold yet (idempotent); with
    ``replace_matched``, rows whose key it holds are replaced by ``df``'s (an upsert)."""
    for key in keys:
        if not _IDENT.match(key):
            raise ValueError(f"not a valid key column: {key!r}")
    if df.limit(1).count() == 0:
        return  # nothing to add: no commit, no empty snapshot
    ensure_table(df, name, None)
    df = conform(df, name)
    view = f"insert_source_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    try:
        matched = "WHEN MATCHED THEN UPDATE SET * " if replace_matched else ""
        statement = (
            f"MERGE INTO {name} t USING {view} s ON {on} {matched}WHEN NOT MATCHED THEN INSERT *"
        )
        df.sparkSession.sql(statement)
    finally:
        df.sparkSession.catalog.dropTempView(view)


def current_snapshot(spark: SparkSession, name: str) -> int | None:
    """The snapshot the table's ``main`` branch is at; None for a table not created yet."""
    commit = commit_of(spark, name)
    return commit.snapshot_id if commit else None


def as_of_now(spark: SparkSession, name: str) -> DataFrame:
    """The table at its current snapshot, however often the frame is read later: a commit
    made meanwhile (another run's, on a catalog that takes concurrent writers) is not seen
    by some reads and not by others."""
    return at_snapshot(spark, name, current_snapshot(spark, name))


def at_snapshot(spark: SparkSession, name: str, snapshot_id: int | None) -> DataFrame:
    """The table as snapshot ``snapshot_id`` holds it (None: as it is now), by the reader's
    option rather than a SQL string."""
    reader = spark.read.format("iceberg")
    if snapshot_id is not None:
        reader = reader.option("snapshot-id", snapshot_id)
    return reader.load(name)


@dataclass(frozen=True)
class Commit:
    """The snapshot a table's ``main`` branch is at, from its summary: no data file read."""

    snapshot_id: int
    parent_id: int | None
    added_rows: int
    total_rows: int | None


def iceberg_table(spark: SparkSession, name: str) -> Any:
    """The Iceberg ``Table`` (Java) the session's catalog holds for ``name``, refreshed from the
    catalog: its metadata answers in milliseconds where a metadata table (``<name>.refs``) is a
    Spark job. Loaded through the session's catalog, so what Spark wrote it has seen; refreshed,
    so a commit made elsewhere (another JVM, pyiceberg) too."""
    jvm: Any = spark.sparkContext._jvm  # py4j's gateway: untyped
    session: Any = spark._jsparkSession  # pyright: ignore[reportAttributeAccessIssue]
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(session, name)
    table.refresh()
    return table


def commit_of(spark: SparkSession, name: str) -> Commit | None:
    """The commit the table's ``main`` branch is at; None for a table without one (or no
    table). From the table's metadata, no Spark job."""
    if not spark.catalog.tableExists(name):
        return None
    snapshot = iceberg_table(spark, name).currentSnapshot()
    if snapshot is None:
        return None
    summary = snapshot.summary()  # a java.util.Map of strings
    total = summary.get("total-records")
    return Commit(
        snapshot.snapshotId(),
        snapshot.parentId(),  # a java.lang.Long or null: an int or None here
        int(summary.get("added-records") or 0),
        int(total) if total is not None else None,
    )


def _planned_files(
    spark: SparkSession, name: str, column: str, after: date | None, before: date | None
) -> Any:
    """The file scan tasks of a scan of the table's rows whose ``column`` (a date) is on or
    after ``after`` and before ``before`` (either bound may be open): planned from its
    metadata, no Spark job. A closeable iterable of Iceberg ``FileScanTask`` (one a file)."""
    jvm: Any = spark.sparkContext._jvm  # py4j's gateway: untyped
    expressions = jvm.org.apache.iceberg.expressions.Expressions
    condition = expressions.alwaysTrue()
    if after is not None:
        condition = getattr(expressions, "and")(
            condition, expressions.greaterThanOrEqual(column, after.isoformat())
        )
    if before is not None:
        condition = getattr(expressions, "and")(
            condition, expressions.lessThan(column, before.isoformat())
        )
    return iceberg_table(spark, name).newScan().filter(condition).planFiles()


def _rows_between(
    spark: SparkSession, name: str, column: str, after: date | None, before: date | None
) -> DataFrame:
    rows = spark.table(name)
    if after is not None:
        rows = rows.where(F.col(column) >= F.lit(after))
    if before is not None:
        rows = rows.where(F.col(column) < F.lit(before))
    return rows


def holds_rows(
    spark: SparkSession,
    name: str,
    column: str,
    after: date | None = None,
    before: date | None = None,
) -> bool:
    """Whether the table holds a row whose ``column`` (a date) is on or after ``after`` and
    before ``before`` (either bound may be open). Told by planning a scan of its files, with
    no Spark job, where that is exact: no file in range, or a file of a partition of
    ``column`` (so wholly in range) with no delete files (so with rows; writers write no
    empty file). Otherwise (a table not partitioned by ``column``, rows deleted by delete
    files) by a query."""
    if not spark.catalog.tableExists(name):
        return False
    tasks = _planned_files(spark, name, column, after, before)
    try:
        found = tasks.iterator()
        if not found.hasNext():
            return False
        task = found.next()
        if task.deletes().isEmpty() and _day_of(task.spec(), task.file(), column) is not None:
            return True
    finally:
        tasks.close()
    return _rows_between(spark, name, column, after, before).limit(1).count() > 0


def rows_per_day_held(
    spark: SparkSession,
    name: str,
    column: str,
    after: date | None = None,
    before: date | None = None,
) -> dict[str, int]:
    """The table's rows per day of ``column`` (a date) on or after ``after`` and before
    ``before``, days without rows left out. From the record counts of the files a scan of
    that range plans (no Spark job) where they are exact: each file of one partition of
    ``column`` and with no delete files. Otherwise counted by a query."""
    if not spark.catalog.tableExists(name):
        return {}
    per_day: dict[str, int] | None = {}
    tasks = _planned_files(spark, name, column, after, before)
    try:
        found = tasks.iterator()
        while per_day is not None and found.hasNext():
            task = found.next()
            day = _day_of(task.spec(), task.file(), column) if task.deletes().isEmpty() else None
            if day is None:
                per_day = None  # rows deleted, or a file of several days: count them
            else:
                per_day[day] = per_day.get(day, 0) + task.file().recordCount()
    finally:
        tasks.close()
    if per_day is None:
        per_day = rows_per_day(_rows_between(spark, name, column, after, before), column)
    return {d: n for d, n in sorted(per_day.items()) if n}


def rows_in_window(spark: SparkSession, name: str, column: str, window: DayWindow) -> int:
    """The table's rows of the window's days of ``column`` (``rows_per_day_held``: no Spark
    job where its files tell)."""
    return sum(rows_per_day_held(spark, name, column, window.start, window.end).values())


def total_rows(spark: SparkSession, name: str) -> int:
    """The table's rows (its commit's ``total-records``; no Spark job); 0 for no table."""
    commit = commit_of(spark, name)
    return (commit.total_rows or 0) if commit else 0


_PARTITION_DAY = re.compile(r"(?P<column>[a-z_][a-z0-9_]*)=(?P<day>\d{4}-\d{2}-\d{2})")


def _day_of(spec: Any, data_file: Any, column: str) -> str | None:
    """The day of ``data_file``'s partition when the table is partitioned by ``column``
    itself (an identity partition, so every row of the file is of that day); else None."""
    path = _PARTITION_DAY.fullmatch(spec.partitionToPath(data_file.partition()))
    return path["day"] if path and path["column"] == column else None


def rows_added_per_day(
    spark: SparkSession, name: str, column: str, snapshot_id: int
) -> dict[str, int] | None:
    """The rows snapshot ``snapshot_id`` added, per day of ``column``: the record counts of
    the data files it added, from the table's metadata (no Spark job, any number of days).
    None when that is not the rows it holds anew: it added delete files, or a file is not of
    one day of ``column``."""
    table = iceberg_table(spark, name)
    snapshot = table.snapshot(snapshot_id)
    if snapshot is None or snapshot.addedDeleteFiles(table.io()).iterator().hasNext():
        return None
    specs = table.specs()
    per_day: dict[str, int] = {}
    added = snapshot.addedDataFiles(table.io()).iterator()
    while added.hasNext():
        data_file = added.next()
        day = _day_of(specs.get(data_file.specId()), data_file, column)
        if day is None:
            return None
        per_day[day] = per_day.get(day, 0) + data_file.recordCount()
    return {d: n for d, n in sorted(per_day.items()) if n}


def observed_metrics(observation: Observation, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """What ``observation`` saw in the first action that ran its frame, which has ended (a
    write); None if Spark has not handed it over within ``timeout_s`` (a listener does, a few
    ms after the action). ``Observation.get`` would wait for ever for an action that failed
    before it ran: never an answer for a run that must end. Spark hands over an empty dict for
    a plan it proved empty and dropped. Sums over tasks, so a retried stage can count twice:
    check the figures against what the write committed."""
    java: Any = observation._jo  # set by DataFrame.observe; py4j's object: untyped
    if java is None:  # never observed
        return None
    future = java.future()
    deadline = monotonic() + timeout_s
    while not future.isCompleted():
        if monotonic() > deadline:
            return None
        sleep(0.005)
    return observation.get


def rows_per_day(df: DataFrame, column: str) -> dict[str, int]:
    """The rows of each day of ``column`` (a date), counted: one aggregation over ``df``."""
    return {str(r[0]): r[1] for r in df.groupBy(column).count().orderBy(column).collect()}
