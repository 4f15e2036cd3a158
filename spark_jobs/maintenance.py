"""Iceberg housekeeping for one table, with Iceberg's own Spark procedures.

Every daily overwrite adds a snapshot, data files and a manifest; nothing else removes them,
so the warehouse and query planning grow without bound. ``maintain`` runs, in this order:

1. ``expire_snapshots``: snapshots older than the retention go (never the current one), and
   with them the files only they referenced;
2. ``rewrite_data_files``: after the table gets the project's write properties if it lacks
   them (``storage.adopt_write_properties``: a table from an older version, or dbt's), bin-packs
   small files of the recent partitions (the days up to
   ``recent_days`` before the newest one: older days were packed by earlier runs), or of the
   whole table when it is not partitioned;
3. ``rewrite_manifests``: one manifest per partition range instead of one per commit;
4. ``remove_orphan_files``: files under the table's location that no snapshot references
   (left by a killed write), older than the retention and never younger than a day, so a
   write still running is never harmed.

The table name and every argument come from this codebase (identifiers checked, numbers and
dates formatted here), never from input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs.session import interruptible
from spark_jobs.storage import CATALOG, adopt_write_properties, table_name

if TYPE_CHECKING:
    from pyspark.sql import Row, SparkSession

NAME = r"[a-z_][a-z0-9_]*"  # a column name as DESCRIBE prints it


@dataclass(frozen=True)
class Policy:
    retention_days: int = 7
    recent_days: int = 7
    min_input_files: int = 2  # a partition with this many files or more is packed

    def __post_init__(self) -> None:
        if self.retention_days < 0 or self.recent_days < 0 or self.min_input_files < 1:
            raise ValueError(f"invalid maintenance policy {self}")


@dataclass(frozen=True)
class Footprint:
    """What a table holds, from its metadata tables."""

    snapshots: int
    data_files: int
    data_bytes: int
    manifests: int


@dataclass(frozen=True)
class Outcome:
    table: str
    before: Footprint
    after: Footprint
    snapshots_expired: int
    files_deleted_by_expiry: int
    data_files_rewritten: int
    data_files_added: int
    manifests_rewritten: int
    orphan_files_removed: int
    rewrote: str  # which partitions were packed, in words
    properties_set: dict[str, str] = field(default_factory=dict)  # adopted before the packing
    orphans: list[str] = field(default_factory=list)  # a sample of their paths


def footprint(spark: SparkSession, name: str) -> Footprint:
    files = spark.table(f"{name}.files").agg(
        F.count(F.lit(1)).alias("n"), F.coalesce(F.sum("file_size_in_bytes"), F.lit(0))
    )
    n_files, size = files.first() or (0, 0)
    snapshots = spark.table(f"{name}.snapshots").count()
    manifests = spark.table(f"{name}.manifests").count()
    return Footprint(snapshots, int(n_files), int(size), manifests)


Argument = str | int | datetime | dict[str, str]


def procedure(spark: SparkSession, name: str, **args: Argument) -> list[Row]:
    """``CALL lakehouse.system.<name>(<arg> => <value>, ...)``, its rows. Iceberg's procedures
    take no bound parameters (its SQL extensions parse CALL themselves), so each value is
    written here as the literal of its type, and a string that could not be quoted as it is
    is refused rather than escaped."""
    if not all(re.fullmatch(NAME, n) for n in (name, *args)):
        raise ValueError(f"not a procedure or argument name: {name}({', '.join(args)})")
    named = ", ".join(f"{arg} => {_literal(value)}" for arg, value in args.items())
    return spark.sql(f"CALL {CATALOG}.system.{name}({named})").collect()


def _literal(value: Argument) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return f"map({', '.join(f'{_literal(k)}, {_literal(v)}' for k, v in value.items())})"
    quote = '"' if "'" in value else "'"  # a filter holds '...' date literals
    if quote in value or "\\" in value:
        raise ValueError(f"cannot pass {value!r} to a procedure")
    return f"{quote}{value}{quote}"


def first(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


def _day_partition(spark: SparkSession, name: str) -> str | None:
    """The column a table is partitioned by day on, if any: a date column partitioned by
    identity (``# Partition Information``) or a timestamp by ``days(ts)`` (``# Partitioning``),
    as ``DESCRIBE TABLE EXTENDED`` lists them."""
    section = None
    for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect():
        column, kind = row.col_name.strip(), (row.data_type or "").strip()
        if column == "# col_name":
            continue
        if column.startswith("#") or not column:
            section = column or None
        elif section == "# Partition Information" and kind == "date":
            return column
        elif section == "# Partitioning" and column.startswith("Part "):
            match = re.fullmatch(rf"days\(({NAME})\)|({NAME})", kind)
            if match:
                return match.group(1) or match.group(2)
    return None


def _recent_filter(spark: SparkSession, name: str, recent_days: int) -> tuple[str | None, str]:
    column = _day_partition(spark, name)
    if column is None:
        return None, "the whole table (not partitioned by day)"
    newest = spark.table(name).agg(F.max(F.col(column).cast("date"))).first()
    if newest is None or newest[0] is None:
        return None, "nothing (the table is empty)"
    since: date = newest[0] - timedelta(days=recent_days)
    return f"{column} >= '{since.isoformat()}'", f"{column} from {since} to {newest[0]}"


@interruptible  # a cancelled run stops a long rewrite at once
def maintain(
    spark: SparkSession, layer: str, table: str, policy: Policy, now: datetime | None = None
) -> Outcome:
    """Housekeeping of ``lakehouse.<layer>.<table>`` under ``policy``."""
    name, now = table_name(layer, table), now or datetime.now(UTC)  # identifiers checked
    qualified = f"{layer}.{table}"  # as the procedures name it, within the catalog
    before = footprint(spark, name)
    cutoff = now - timedelta(days=policy.retention_days)
    expired = procedure(
        spark, "expire_snapshots", table=qualified, older_than=cutoff, retain_last=1
    )
    deleted = sum(int(v or 0) for v in expired[0].asDict().values()) if expired else 0
    expired_count = before.snapshots - footprint(spark, name).snapshots  # before the rewrites
    properties_set = adopt_write_properties(spark, name)  # so the packed files have them
    where, rewrote = _recent_filter(spark, name, policy.recent_days)
    options = {"min-input-files": str(policy.min_input_files)}
    scope = {"where": where} if where else {}
    rewritten = first(
        procedure(spark, "rewrite_data_files", table=qualified, options=options, **scope)
    )
    manifests = first(procedure(spark, "rewrite_manifests", table=qualified))
    orphan_cutoff = now - timedelta(days=max(policy.retention_days, 1))
    orphans = [
        r.orphan_file_location
        for r in procedure(spark, "remove_orphan_files", table=qualified, older_than=orphan_cutoff)
    ]
    after = footprint(spark, name)
    return Outcome(
        table=qualified,
        before=before,
        after=after,
        snapshots_expired=expired_count,
        files_deleted_by_expiry=deleted,
        data_files_rewritten=int(rewritten["rewritten_data_files_count"]) if rewritten else 0,
        data_files_added=int(rewritten["added_data_files_count"]) if rewritten else 0,
        manifests_rewritten=int(manifests["rewritten_manifests_count"]) if manifests else 0,
        orphan_files_removed=len(orphans),
        rewrote=rewrote,
        orphans=orphans[:5],
        properties_set=properties_set,
    )
