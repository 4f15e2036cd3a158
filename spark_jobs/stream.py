"""The inventory stream: landed Kafka-sink files become stock levels within minutes, exactly once.

Spark Structured Streaming with ``trigger(availableNow=True)``: each run processes whatever
arrived since the last one (as one micro-batch: ``_run``), then stops, so there is no
long-running job to babysit. Its source is an *arrivals log*, the Iceberg table
``silver.inventory_stream_arrivals``: one row per landed object version, appended at the start
of a run. The log exists because this Spark has no S3 filesystem (no hadoop-aws) to list a
bucket; as an Iceberg table it lives in the warehouse, so executors on a cluster read it like
any table. Each micro-batch reads the objects
its rows name with Bronze's own reader (``storage.read_landed``: local folder or S3, BOM, invalid
UTF-8, line numbers), so the stream and the daily batch see the same lines.

Exactly once, across kills and reruns:
- the arrivals log is append-only, one row per object version;
- Spark's checkpoint (under ``$LAKEHOUSE_HOME/streams/inventory/``, written by the driver only)
  records which log snapshots each micro-batch took, and replays a micro-batch whose commit it
  did not record;
- every write is an idempotent MERGE: events by their Kafka coordinates (topic, partition,
  offset), quarantined lines by their key, so a replayed micro-batch adds nothing twice;
- a micro-batch is judged against the micro-batches *before* it, and its first attempt records
  what it was judged with (the watermark, the ``silver.products`` snapshot) in
  ``silver.inventory_stream_batches``: a replay reuses them, so it makes the same decisions even
  after a product arrived in between;
- the checkpoint and the tables must agree: a run that finds one without the other (a lost
  ``streams/`` folder, restored tables) stops with a one-line error instead of re-judging
  history (``make stream-reset`` starts it again from scratch).

Lateness: Spark's own watermark drops late rows silently. Here the watermark has Spark's
meaning (the newest event time of earlier micro-batches minus the allowed delay), but an
event older than it is quarantined under ``event_ts_within_watermark``, never dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.bronze import with_lineage
from spark_jobs.maintenance import procedure
from spark_jobs.quality import RULES_COLUMN
from spark_jobs.session import hold_lock
from spark_jobs.settings import LakehouseSetupError
from spark_jobs.silver.common import (
    BRONZE_PARTITION,
    DEDUP_LOOKBACK_DAYS,
    Lateness,
    quarantine_rows,
)
from spark_jobs.silver.inventory import clean_inventory_events
from spark_jobs.storage import LandingZone, table_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.settings import Settings

FEED = "inventory"
STREAM_TABLE = table_name("silver", "inventory_stream")
QUARANTINE_TABLE = table_name("silver", "inventory_stream_quarantine")
ARRIVALS_TABLE = table_name("silver", "inventory_stream_arrivals")
BATCHES_TABLE = table_name("silver", "inventory_stream_batches")
NOW_TABLE = table_name("gold", "low_stock_now")
NOTIFIED_TABLE = table_name("gold", "low_stock_notifications")
PRODUCTS_TABLE = table_name("silver", "products")
TABLES = (STREAM_TABLE, QUARANTINE_TABLE, ARRIVALS_TABLE, BATCHES_TABLE, NOW_TABLE, NOTIFIED_TABLE)
COORDINATES = ["topic", "partition", "offset"]
LATE_RULE = "event_ts_within_watermark"
ARRIVALS_SCHEMA = "day date, landed_us long, path string, version string"
# The arrivals log is compacted after a run once it has more snapshots than this.
ARRIVALS_SNAPSHOTS = 20
# A redelivered event landed at most this long after its first copy: older copies are
# quarantined by Silver's plausibility rule (event time within 7 days before the landing day,
# up to a day after it), so deduplication reads only the stream's partitions this recent.
REDELIVERY_DAYS = DEDUP_LOOKBACK_DAYS + 2
RESET_HINT = "replay the stream from scratch with `make stream-reset`"


class StreamStateError(LakehouseSetupError):
    """The checkpoint and the stream's tables disagree."""


@dataclass(frozen=True)
class StreamPaths:
    """Where the driver keeps the stream's state: Spark's checkpoint and the run lock."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> StreamPaths:
        return cls(settings.home / "streams" / FEED)

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"


@dataclass
class MicroBatch:
    """What one micro-batch did (also kept in ``silver.inventory_stream_batches``)."""

    batch_id: int
    objects: int
    lines: int
    events_added: int
    redelivered: int  # events whose coordinates an earlier micro-batch (or line) already had
    late: int
    quarantined: dict[str, int]  # rows per rule, the late ones included
    watermark: str | None
    replayed: bool  # an earlier attempt planned it (and was killed or failed)


@dataclass
class StreamResult:
    logged: int  # object versions added to the arrivals log by this run
    batches: list[MicroBatch] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(b, name) for b in self.batches)

    def quarantined(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for batch in self.batches:
            for rule, n in batch.quarantined.items():
                out[rule] = out.get(rule, 0) + n
        return out


def log_arrivals(spark: SparkSession, settings: Settings, run_id: str) -> int:
    """Append one arrivals-log row per landed object version not logged yet (in landing
    order, one commit); how many were new."""
    landed = storage.list_landing_files(settings, FEED)
    if not landed:
        return 0
    found = storage.local_rows(
        spark, [(f.day, f.landed_us, f.path, f.version) for f in landed], ARRIVALS_SCHEMA
    )
    logged = storage.current_table(spark, ARRIVALS_TABLE)
    if logged is not None:
        found = found.join(logged.select("path", "version"), ["path", "version"], "left_anti")
    new = (
        found.withColumns({"logged_at": F.current_timestamp(), "_run_id": F.lit(run_id)})
        .select("day", "landed_us", "path", "version", "logged_at", "_run_id")
        .orderBy("landed_us", "path")
        .coalesce(1)
        .localCheckpoint()
    )
    added = new.count()
    if added:
        storage.ensure_table(new, ARRIVALS_TABLE, None)
        storage.conform(new, ARRIVALS_TABLE).writeTo(ARRIVALS_TABLE).append()
    return added


# ------------------------------------------------------------------ micro-batch plans
def _newest_event_time(spark: SparkSession, batch_id: int) -> DataFrame:
    """One row: the newest event time the micro-batches before ``batch_id`` stored."""
    batches = storage.current_table(spark, BATCHES_TABLE)
    if batches is None:
        return spark.range(1).select(F.lit(None).cast("timestamp").alias("newest"))
    earlier = batches.where(F.col("batch_id") < F.lit(batch_id))
    return earlier.agg(F.max("max_event_ts").alias("newest"))


def _plan(spark: SparkSession, batch_id: int, settings: Settings, run_id: str) -> DataFrame:
    """The micro-batch's row in the batches table: recorded by its first attempt (the
    watermark and the products snapshot it is judged with), and returned as recorded."""
    batches = storage.current_table(spark, BATCHES_TABLE)
    recorded = None if batches is None else batches.where(F.col("batch_id") == F.lit(batch_id))
    if recorded is not None and recorded.limit(1).count():
        return recorded
    products = storage.commit_of(spark, PRODUCTS_TABLE)  # None: no products table yet
    products_snapshot = products.snapshot_id if products is not None else None
    delay = F.expr(f"INTERVAL {int(settings.stream_watermark_minutes)} MINUTES")
    plan = _newest_event_time(spark, batch_id).select(
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.lit(run_id).alias("first_run_id"),
        F.lit(None).cast("string").alias("run_id"),
        F.lit(products_snapshot).cast("long").alias("products_snapshot_id"),
        (F.col("newest") - delay).alias("watermark"),
        F.current_timestamp().alias("started_at"),
        F.lit(None).cast("timestamp").alias("finished_at"),
        *[
            F.lit(None).cast("long").alias(name)
            for name in ("objects", "lines", "events_added", "redelivered", "late")
        ],
        F.lit(None).cast("map<string,bigint>").alias("quarantined"),
        F.lit(None).cast("timestamp").alias("max_event_ts"),
    )
    storage.insert_missing(plan, BATCHES_TABLE, ["batch_id"])
    batches = storage.current_table(spark, BATCHES_TABLE)
    assert batches is not None, "just written"
    return batches.where(F.col("batch_id") == F.lit(batch_id))


def _products(spark: SparkSession, snapshot_id: int | None) -> DataFrame | None:
    """``silver.products`` as the micro-batch's first attempt saw it (the current one when
    that snapshot has been expired since, or there were no products then)."""
    if snapshot_id is None or not spark.catalog.tableExists(PRODUCTS_TABLE):
        return storage.current_table(spark, PRODUCTS_TABLE)
    snapshots = spark.table(f"{PRODUCTS_TABLE}.snapshots")
    if not snapshots.where(F.col("snapshot_id") == F.lit(snapshot_id)).limit(1).count():
        return storage.current_table(spark, PRODUCTS_TABLE)
    return storage.at_snapshot(spark, PRODUCTS_TABLE, snapshot_id)


def _earlier_events(spark: SparkSession, batch_id: int, valid: DataFrame) -> DataFrame | None:
    """Coordinates the micro-batches before this one stored, as far back as a redelivery of
    ``valid``'s events can reach (partition pruning on the landing day)."""
    events = storage.current_table(spark, STREAM_TABLE)
    first = valid.agg(F.min("snapshot_date")).first()
    if events is None or first is None or first[0] is None:
        return None
    since = first[0] - timedelta(days=REDELIVERY_DAYS)
    return events.where(
        (F.col("snapshot_date") >= F.lit(since)) & (F.col("_batch_id") < F.lit(batch_id))
    ).select(*COORDINATES)


def process_batch(
    arrivals: DataFrame, batch_id: int, settings: Settings, run_id: str
) -> MicroBatch:
    """Read the objects a micro-batch names, judge their events like Silver does, and add the
    new ones to the stream table and the rest to its quarantine, idempotently."""
    spark = arrivals.sparkSession
    plan = _plan(spark, batch_id, settings, run_id).localCheckpoint()
    [planned] = plan.select(
        "first_run_id",
        "products_snapshot_id",
        # As text, compared in Spark: a Python datetime would pass through the driver's zone.
        F.date_format("watermark", "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("watermark"),
    ).collect()
    watermark = planned["watermark"]

    objects = arrivals.count()
    # Read once: every count and write below works from this copy, not from the objects.
    lines = storage.read_landed(arrivals, LandingZone.of(settings), objects).localCheckpoint()
    bronze = with_lineage(lines, f"landing.{FEED}", run_id)
    products = _products(spark, planned["products_snapshot_id"])
    # No grace for a missing product: the stream has no later run that would re-check it.
    # Every row keeps its line: a late one is quarantined below, from the kept rows, and the
    # stream has no Bronze table: its quarantine record is the only copy of the event.
    split = clean_inventory_events(bronze, products, run_id, Lateness(), keep_lines=True)
    valid, bad = split.valid, split.quarantined  # projections of the judged checkpoint

    earlier = _earlier_events(spark, batch_id, valid)
    fresh = valid if earlier is None else valid.join(earlier, COORDINATES, "left_anti")
    is_late = F.col("event_ts") < F.lit(watermark).cast("timestamp") if watermark else F.lit(False)
    fresh = fresh.withColumn("_late", is_late).localCheckpoint()
    late = fresh.where("_late").withColumn(RULES_COLUMN, F.array(F.lit(LATE_RULE)))
    on_time = fresh.where(~F.col("_late"))

    events = on_time.select(
        *COORDINATES,
        "event_id",
        "product_id",
        "warehouse_id",
        "change",
        "stock_level",
        "reason",
        "event_ts",
        "snapshot_date",
        F.col("_bronze._source_file").alias("_source_file"),
        F.col("_bronze._line_number").alias("_line_number"),
        F.col("_bronze._landed_at").alias("_landed_at"),
        F.lit(batch_id).cast("long").alias("_batch_id"),
        F.lit(run_id).alias("_run_id"),
        F.current_timestamp().alias("_ingested_at"),
    )
    offset_key = F.concat_ws(":", *COORDINATES)
    quarantined = bad.unionByName(quarantine_rows(late.drop("_late"), offset_key, run_id))
    quarantined = quarantined.localCheckpoint()

    # The landing day is in the key: a replay writes the same rows, and the MERGE then
    # reads only those days' partitions of the table.
    storage.ensure_table(events, STREAM_TABLE, "snapshot_date")
    storage.insert_missing(events, STREAM_TABLE, [*COORDINATES, "snapshot_date"])
    storage.ensure_table(quarantined, QUARANTINE_TABLE, BRONZE_PARTITION)
    storage.insert_missing(quarantined, QUARANTINE_TABLE, [BRONZE_PARTITION, "record_key"])

    per_rule = {
        r["rule"]: r["rows"]
        for r in quarantined.select(F.explode("rules").alias("rule"))
        .groupBy("rule")
        .agg(F.count(F.lit(1)).alias("rows"))
        .collect()
    }
    counts = fresh.agg(
        F.count(F.lit(1)).alias("fresh"),
        F.count_if("_late").alias("late"),
        F.max(F.when(~F.col("_late"), F.col("event_ts"))).alias("max_event_ts"),
    ).localCheckpoint()
    [stats] = counts.collect()
    n_valid = valid.count() + split.duplicates.count()
    batch = MicroBatch(
        batch_id=batch_id,
        objects=objects,
        lines=lines.count(),
        events_added=stats["fresh"] - stats["late"],
        redelivered=n_valid - stats["fresh"],
        late=stats["late"],
        quarantined=per_rule,
        watermark=watermark,
        replayed=planned["first_run_id"] != run_id,
    )
    done = plan.drop("max_event_ts").crossJoin(counts.select("max_event_ts"))
    done = done.withColumns(
        {
            "run_id": F.lit(run_id),
            "finished_at": F.current_timestamp(),
            "objects": F.lit(batch.objects).cast("long"),
            "lines": F.lit(batch.lines).cast("long"),
            "events_added": F.lit(batch.events_added).cast("long"),
            "redelivered": F.lit(batch.redelivered).cast("long"),
            "late": F.lit(batch.late).cast("long"),
            "quarantined": F.create_map(
                *[F.lit(x) for rule, n in sorted(per_rule.items()) for x in (rule, n)]
            ).cast("map<string,bigint>"),
        }
    )
    storage.insert_missing(done, BATCHES_TABLE, ["batch_id"], replace_matched=True)
    return batch


# ------------------------------------------------------------------ runs
@contextlib.contextmanager
def exclusive(paths: StreamPaths) -> Iterator[None]:
    """One run of the stream (or of its alerts) at a time, however it was started (the
    sensor never starts two, the UI or the CLI might): a second waits, then takes what the
    first left. The kernel drops the lock when a process ends, also after `kill -9`."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with hold_lock(paths.root / "stream.lock"):
        yield


@dataclass(frozen=True)
class Generation:
    """One Spark checkpoint of the stream. When the arrivals log is packed (``compact``) the
    stream goes on in a new checkpoint that starts at the packed snapshot, so the old
    snapshots can expire: Spark's ``availableNow`` walks the log from a checkpoint's first
    snapshot on every run. Micro-batch ids stay global: ``base`` plus Spark's own."""

    path: Path
    base: int  # the global id of its first micro-batch
    from_ms: int | None  # where it starts in the arrivals log (a packed snapshot's time)

    @property
    def spark(self) -> Path:
        return self.path / "spark"

    def _newest(self, folder: str) -> int | None:
        """The global id of the newest micro-batch with a file in Spark's ``folder``, or of
        the last one before this checkpoint; None before the first."""
        found = self.spark / folder
        ids = [int(f.name) for f in found.iterdir() if f.name.isdigit()] if found.is_dir() else []
        if ids:
            return self.base + max(ids)
        return self.base - 1 if self.base else None

    def planned(self) -> int | None:
        """The newest micro-batch planned (Spark's ``offsets/<id>``)."""
        return self._newest("offsets")

    def committed(self) -> int | None:
        """The newest micro-batch Spark recorded as done (``commits/<id>``)."""
        return self._newest("commits")


GENERATION_FILE = "generation.json"


def active_generation(paths: StreamPaths) -> Generation | None:
    found = []
    for folder in paths.checkpoint.glob("from-*"):
        marker = folder / GENERATION_FILE
        if marker.is_file():
            meta = json.loads(marker.read_text())
            found.append(Generation(folder, int(meta["base"]), meta["from_ms"]))
    return max(found, key=lambda g: (g.base, g.from_ms or 0), default=None)


def _new_generation(paths: StreamPaths, base: int, from_ms: int | None) -> Generation:
    """A checkpoint folder that appears whole (an atomic rename), or the one already there."""
    name = f"from-{base:012d}-{from_ms or 0}"
    final = paths.checkpoint / name
    if not (final / GENERATION_FILE).is_file():
        partial = paths.checkpoint / f".{name}.tmp"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (partial / GENERATION_FILE).write_text(json.dumps({"base": base, "from_ms": from_ms}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    return Generation(final, base, from_ms)


def check_state(spark: SparkSession, paths: StreamPaths) -> None:
    """The checkpoint and the batches table must describe the same history.

    Spark writes ``offsets/<id>`` before a micro-batch runs, and the micro-batch records its
    plan first thing, so the table's newest batch is the checkpoint's or the one before it.
    Anything else means one of them was lost or restored on its own: going on would re-judge
    (or skip) events that are already decided.
    """
    generation = active_generation(paths)
    planned = generation.planned() if generation is not None else None
    batches = storage.current_table(spark, BATCHES_TABLE)
    newest = batches.agg(F.max("batch_id")).first() if batches is not None else None
    recorded = newest[0] if newest is not None else None
    events = storage.current_table(spark, STREAM_TABLE)
    if recorded is None and events is not None and events.limit(1).count():
        raise StreamStateError(
            f"{STREAM_TABLE} holds events but {BATCHES_TABLE} records no micro-batch (a "
            f"stream from before that table, or a table dropped alone): {RESET_HINT}"
        )
    if recorded is not None and planned is None:
        raise StreamStateError(
            f"the inventory stream's checkpoint {paths.checkpoint} is missing, but "
            f"{BATCHES_TABLE} records {recorded + 1} micro-batches: restore the checkpoint, "
            f"or {RESET_HINT}"
        )
    # A micro-batch Spark recorded as done must be in the table: Spark never replays it.
    committed = generation.committed() if generation is not None else None
    oldest_allowed = planned if committed == planned else (planned or 0) - 1
    if planned is not None and not (
        (recorded is None and planned == 0 and committed is None)
        or (recorded is not None and oldest_allowed <= recorded <= planned)
    ):
        found = "no micro-batch" if recorded is None else f"micro-batch {recorded}"
        raise StreamStateError(
            f"the inventory stream's checkpoint {paths.checkpoint} is at micro-batch {planned}, "
            f"but {BATCHES_TABLE} records {found}: restore the tables, or {RESET_HINT}"
        )


def run_inventory_stream(spark: SparkSession, settings: Settings, run_id: str) -> StreamResult:
    """Log the new arrivals, then process everything not yet processed and stop."""
    paths = StreamPaths.of(settings)
    with exclusive(paths):
        check_state(spark, paths)
        return _run(spark, settings, paths, run_id)


def reset(spark: SparkSession, settings: Settings) -> None:
    """Forget everything streamed: its tables and its checkpoint, together (a checkpoint
    without its tables, or the reverse, would skip or repeat events)."""
    paths = StreamPaths.of(settings)
    with exclusive(paths):
        # The checkpoint first: killed in between, tables without a checkpoint are refused
        # with a line saying to reset again, while the reverse could replay into new tables.
        shutil.rmtree(paths.checkpoint, ignore_errors=True)
        for name in TABLES:
            # Names from table_name(), which admits only plain identifiers.
            spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")


def _run(spark: SparkSession, settings: Settings, paths: StreamPaths, run_id: str) -> StreamResult:
    result = StreamResult(logged=log_arrivals(spark, settings, run_id))
    if not spark.catalog.tableExists(ARRIVALS_TABLE):
        return result  # nothing has ever landed
    generation = active_generation(paths) or _new_generation(paths, 0, None)

    def each(arrivals: DataFrame, batch_id: int) -> None:
        global_id = generation.base + batch_id
        result.batches.append(process_batch(arrivals, global_id, settings, run_id))

    # One micro-batch per run: Iceberg 1.10's source does not implement availableNow itself,
    # and Spark's stand-in for it takes everything there is at the start in one batch.
    reader = spark.readStream
    if generation.from_ms is not None:
        reader = reader.option("stream-from-timestamp", str(generation.from_ms))
    query = (
        reader.table(ARRIVALS_TABLE)
        .writeStream.foreachBatch(each)
        .option("checkpointLocation", str(generation.spark))
        .trigger(availableNow=True)
        .queryName(f"{FEED}_stream")
        .start()
    )
    query.awaitTermination()
    compact_arrivals(spark, paths)
    return result


def compact_arrivals(
    spark: SparkSession, paths: StreamPaths, keep: int = ARRIVALS_SNAPSHOTS
) -> bool:
    """Pack the arrivals log once it has more than ``keep`` snapshots; whether it did.

    Called after a run took everything. Its files are packed into one (a ``replace``
    snapshot, which the stream skips), the stream goes on in a new checkpoint starting at
    that snapshot, and every older snapshot expires. Each step is safe to be killed after:
    until the new checkpoint exists the old one goes on (its snapshots are still there), and
    a new checkpoint starts at the packed snapshot whatever has expired yet. The weekly
    housekeeping leaves this table alone: expiring a snapshot a checkpoint needs would stop
    the stream.
    """
    generation = active_generation(paths)
    log = f"{ARRIVALS_TABLE}.snapshots"
    if generation is None or spark.table(log).count() <= keep:
        return False
    qualified = ARRIVALS_TABLE.split(".", 1)[1]  # as the procedures name it
    procedure(spark, "rewrite_data_files", table=qualified, options={"min-input-files": "2"})
    spark.catalog.refreshTable(ARRIVALS_TABLE)
    packed = (
        spark.table(log)
        .orderBy(F.col("committed_at").desc())
        .select(
            "operation",
            F.unix_millis("committed_at").alias("ms"),
        )
        .first()
    )
    if packed is None or packed["operation"] != "replace":
        return False  # a single file: nothing to pack, and no snapshot to start from
    committed = generation.committed()
    new = _new_generation(paths, 0 if committed is None else committed + 1, packed["ms"])
    packed_at = datetime.fromtimestamp(packed["ms"] / 1000, UTC)
    procedure(spark, "expire_snapshots", table=qualified, older_than=packed_at, retain_last=1)
    for folder in paths.checkpoint.glob("from-*"):
        if folder != new.path:
            shutil.rmtree(folder, ignore_errors=True)
    return True


# ------------------------------------------------------------------ current stock
def current_stock(events: DataFrame) -> DataFrame:
    """The last known level per product and warehouse: by event time, then Kafka position,
    the same order ``silver.inventory`` takes a day's last level by."""
    order = F.struct(F.col("event_ts"), F.col("partition"), F.col("offset"))
    return events.groupBy("product_id", "warehouse_id").agg(
        F.max_by("stock_level", order).alias("stock_level"),
        F.max("event_ts").alias("last_event_ts"),
    )


@dataclass(frozen=True)
class LowStockRule:
    """dbt's ``low_stock_days`` and ``velocity_days`` vars: one definition of "low"."""

    low_stock_days: int
    velocity_days: int


def low_stock_now(spark: SparkSession, rule: LowStockRule, run_id: str) -> DataFrame | None:
    """Stock per product and warehouse now, and the product's days of cover at its sales
    velocity: units sold per day over the ``velocity_days`` full days before today (today
    is the newest event's day), or since the product's first sale when that is more recent.
    None before the stream's first event."""
    events = storage.current_table(spark, STREAM_TABLE)
    if events is None:
        return None
    stock = current_stock(events)
    as_of = stock.agg(F.max("last_event_ts").alias("as_of_ts"))
    stock = stock.crossJoin(as_of).withColumn("as_of_date", F.to_date("as_of_ts"))
    totals = stock.groupBy("product_id").agg(F.sum("stock_level").alias("product_stock"))
    stock = stock.join(totals, "product_id")

    orders = storage.current_table(spark, table_name("gold", "fct_orders"))
    if orders is not None:
        sales = orders.where("is_sale").select("product_id", "order_date", "quantity")
    else:
        sales = storage.local_rows(spark, [], "product_id long, order_date date, quantity long")
    first_sale = sales.groupBy("product_id").agg(F.min("order_date").alias("first_sale"))
    days = F.col("as_of_date")
    recent = (
        stock.select("product_id", "as_of_date")
        .distinct()
        .join(sales, "product_id")
        .where(
            (F.col("order_date") >= F.date_sub(days, rule.velocity_days))
            & (F.col("order_date") < days)
        )
        .groupBy("product_id", "as_of_date")
        .agg(F.sum("quantity").alias("units"))
        .join(first_sale, "product_id")
        .select(
            "product_id",
            (
                F.col("units")
                / F.least(
                    F.lit(rule.velocity_days),
                    F.greatest(F.lit(1), F.datediff(days, F.col("first_sale"))),
                )
            ).alias("units_per_day"),
        )
    )
    out = stock.join(recent, "product_id", "left")
    products = storage.current_table(spark, table_name("silver", "products"))
    if products is not None:
        names = products.select("product_id", F.col("name").alias("product_name"), "category")
        out = out.join(names, "product_id", "left")
    else:
        out = out.withColumns(
            {"product_name": F.lit(None).cast("string"), "category": F.lit(None).cast("string")}
        )
    velocity = F.col("units_per_day")
    return out.select(
        "product_id",
        "warehouse_id",
        "product_name",
        "category",
        "stock_level",
        F.col("product_stock").alias("product_stock_on_hand"),
        velocity.cast("decimal(12,2)").alias("units_per_day"),
        F.when(velocity > 0, F.col("product_stock") / velocity)
        .cast("decimal(12,1)")
        .alias("days_of_cover"),
        F.coalesce(F.col("product_stock") < velocity * rule.low_stock_days, F.lit(False)).alias(
            "below_threshold"
        ),
        "last_event_ts",
        "as_of_ts",
        "as_of_date",
        F.lit(run_id).alias("_run_id"),
    )


def replace_table(df: DataFrame, name: str) -> None:
    """Replace every row of ``name`` with ``df`` in one commit (a current-state table)."""
    storage.ensure_table(df, name, None)
    storage.conform(df, name).writeTo(name).overwrite(F.lit(True))


def newly_low(spark: SparkSession, now: DataFrame, notified_table: str) -> list[dict]:
    """One row per product below the threshold that has not been notified on its day yet."""
    products = (
        now.where("below_threshold")
        .groupBy("product_id", "as_of_date")
        .agg(
            F.first("product_name").alias("product_name"),
            F.first("product_stock_on_hand").alias("stock_on_hand"),
            F.first("units_per_day").alias("units_per_day"),
            F.first("days_of_cover").alias("days_of_cover"),
        )
    )
    notified = storage.current_table(spark, notified_table)
    if notified is not None:
        done = notified.select("product_id", F.col("alert_date").alias("as_of_date"))
        products = products.join(done, ["product_id", "as_of_date"], "left_anti")
    return [row.asDict() for row in products.orderBy("product_id").collect()]


def record_notified(spark: SparkSession, rows: list[dict], name: str, run_id: str) -> None:
    """Remember the products alerted on, one row per product and day, idempotently."""
    if not rows:
        return
    notified = storage.local_rows(
        spark,
        [(r["product_id"], r["as_of_date"], r["stock_on_hand"]) for r in rows],
        "product_id long, alert_date date, stock_on_hand long",
    ).withColumns({"notified_at": F.current_timestamp(), "_run_id": F.lit(run_id)})
    storage.insert_missing(notified, name, ["product_id", "alert_date"])
