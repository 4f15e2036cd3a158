"""The inventory stream: landed Kafka-sink files become stock levels within minutes, exactly once.

Spark Structured Streaming with ``trigger(availableNow=True)``: each run processes whatever
arrived since the last one in micro-batches, then stops, so there is no long-running job to
babysit. Its source is an *arrivals log* under ``LAKEHOUSE_HOME``: one small JSON entry per
landed object version, written before the query starts. The log exists because this Spark
has no S3 filesystem (no hadoop-aws): Spark streams the log, and each micro-batch reads the
objects it names with Bronze's own reader (``storage.read_landed``: local folder or S3, BOM,
invalid UTF-8, line numbers), so the stream and the daily batch see the same lines.

Exactly once, across kills and reruns:
- the arrivals log is append-only, one entry per object version, written atomically;
- Spark's checkpoint records which entries each micro-batch took, and replays a micro-batch
  whose commit it did not record;
- every write is an idempotent MERGE: events by their Kafka coordinates (topic, partition,
  offset), quarantined lines by their key, so a replayed micro-batch adds nothing twice;
- a micro-batch is judged against the events of the micro-batches *before* it (its id is
  stored on every row), so a replay makes the same decisions.

Lateness: Spark's own watermark drops late rows silently. Here the watermark has Spark's
meaning (the newest event time of earlier micro-batches minus the allowed delay), but an
event older than it is quarantined under ``event_ts_within_watermark``, never dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import storage
from spark_jobs.bronze import with_lineage
from spark_jobs.quality import RULES_COLUMN
from spark_jobs.silver.common import BRONZE_PARTITION, Lateness, quarantine_rows
from spark_jobs.silver.inventory import clean_inventory_events
from spark_jobs.storage import LandingZone, table_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.settings import Settings

FEED = "inventory"
STREAM_TABLE = table_name("silver", "inventory_stream")
QUARANTINE_TABLE = table_name("silver", "inventory_stream_quarantine")
NOW_TABLE = table_name("gold", "low_stock_now")
NOTIFIED_TABLE = table_name("gold", "low_stock_notifications")
COORDINATES = ["topic", "partition", "offset"]
LATE_RULE = "event_ts_within_watermark"
ARRIVALS_SCHEMA = "day date, landed_us long, path string, version string"
# A first run over a long history takes it in micro-batches of this many objects.
MAX_FILES_PER_BATCH = 1000


@dataclass(frozen=True)
class StreamPaths:
    """Where the stream keeps its state: the arrivals log and Spark's checkpoint."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> StreamPaths:
        return cls(settings.home / "streams" / FEED)

    @property
    def arrivals(self) -> Path:
        return self.root / "arrivals"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"


@dataclass
class MicroBatch:
    """What one micro-batch did."""

    batch_id: int
    objects: int
    lines: int
    events_added: int
    redelivered: int  # events whose coordinates an earlier micro-batch (or line) already had
    late: int
    quarantined: dict[str, int]  # rows per rule, the late ones included
    watermark: str | None


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


def log_arrivals(settings: Settings, paths: StreamPaths) -> int:
    """One arrivals-log entry per landed object version not logged yet; how many were new.

    An entry's name is a digest of the object and its version, and it appears by an atomic
    rename: Spark never reads half an entry, and logging twice is a no-op.
    """
    paths.arrivals.mkdir(parents=True, exist_ok=True)
    added = 0
    for landed in storage.list_landing_files(settings, FEED):
        digest = hashlib.sha256(f"{landed.path}@{landed.version}".encode()).hexdigest()[:32]
        entry = paths.arrivals / f"{digest}.json"
        if entry.exists():
            continue
        record = {
            "day": landed.day.isoformat(),
            "landed_us": landed.landed_us,
            "path": landed.path,
            "version": landed.version,
        }
        partial = paths.arrivals / f".{digest}.json.tmp"  # hidden: Spark's listing skips it
        partial.write_text(json.dumps(record) + "\n")
        os.replace(partial, entry)
        added += 1
    return added


def _earlier_events(spark: SparkSession, batch_id: int) -> DataFrame | None:
    events = storage.current_table(spark, STREAM_TABLE)
    return None if events is None else events.where(F.col("_batch_id") < batch_id)


def process_batch(
    arrivals: DataFrame, batch_id: int, settings: Settings, run_id: str
) -> MicroBatch:
    """Read the objects a micro-batch names, judge their events like Silver does, and add the
    new ones to the stream table and the rest to its quarantine, idempotently."""
    spark = arrivals.sparkSession
    objects = arrivals.count()
    # Read once: every count and write below works from this copy, not from the objects.
    lines = storage.read_landed(arrivals, LandingZone.of(settings), objects).localCheckpoint()
    bronze = with_lineage(lines, f"landing.{FEED}", run_id)
    products = storage.current_table(spark, table_name("silver", "products"))
    # No grace for a missing product: the stream has no later run that would re-check it.
    split = clean_inventory_events(bronze, products, run_id, Lateness())
    valid = split.valid.localCheckpoint()
    bad = split.quarantined.localCheckpoint()
    within_batch = split.duplicates.count()

    earlier = _earlier_events(spark, batch_id)
    if earlier is not None:
        known = earlier.select(*COORDINATES)
        fresh = valid.join(known, COORDINATES, "left_anti")
        # In Spark, as text: a Python datetime would pass through the driver's time zone.
        minutes = settings.stream_watermark_minutes
        newest = F.max("event_ts") - F.expr(f"INTERVAL {int(minutes)} MINUTES")
        stats = earlier.agg(F.date_format(newest, "yyyy-MM-dd HH:mm:ss.SSSSSS")).first()
        assert stats is not None, "a global aggregate always returns one row"
        watermark = stats[0]  # None while the table is empty
    else:
        fresh, watermark = valid, None
    fresh = fresh.localCheckpoint()
    is_late = F.col("event_ts") < F.lit(watermark).cast("timestamp") if watermark else F.lit(False)
    late = fresh.where(is_late).withColumn(RULES_COLUMN, F.array(F.lit(LATE_RULE)))
    on_time = fresh.where(~is_late)

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
    quarantined = bad.unionByName(quarantine_rows(late, offset_key, run_id))
    quarantined = quarantined.localCheckpoint()

    storage.ensure_table(events, STREAM_TABLE, "snapshot_date")
    storage.insert_missing(events, STREAM_TABLE, COORDINATES)
    storage.ensure_table(quarantined, QUARANTINE_TABLE, BRONZE_PARTITION)
    storage.insert_missing(quarantined, QUARANTINE_TABLE, [BRONZE_PARTITION, "record_key"])

    per_rule = {
        r["rule"]: r["rows"]
        for r in quarantined.select(F.explode("rules").alias("rule"))
        .groupBy("rule")
        .agg(F.count(F.lit(1)).alias("rows"))
        .collect()
    }
    n_fresh = fresh.count()
    n_late = per_rule.get(LATE_RULE, 0)
    return MicroBatch(
        batch_id=batch_id,
        objects=objects,
        lines=lines.count(),
        events_added=n_fresh - n_late,
        redelivered=within_batch + valid.count() - n_fresh,
        late=n_late,
        quarantined=per_rule,
        watermark=watermark,
    )


@contextlib.contextmanager
def exclusive(paths: StreamPaths) -> Iterator[None]:
    """One run of the stream at a time, however it was started (the sensor never starts two,
    the UI or the CLI might): a second waits, then takes what the first left. The kernel
    drops the lock when a process ends, also after `kill -9`."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / "stream.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_inventory_stream(spark: SparkSession, settings: Settings, run_id: str) -> StreamResult:
    """Log the new arrivals, then process everything not yet processed and stop."""
    paths = StreamPaths.of(settings)
    with exclusive(paths):
        return _run(spark, settings, paths, run_id)


def reset(spark: SparkSession, settings: Settings) -> None:
    """Forget everything streamed: its tables, arrivals log and checkpoint, together (a
    checkpoint without its tables, or the reverse, would skip or repeat events)."""
    paths = StreamPaths.of(settings)
    with exclusive(paths):
        for name in (STREAM_TABLE, QUARANTINE_TABLE, NOW_TABLE, NOTIFIED_TABLE):
            # Names from table_name(), which admits only plain identifiers.
            spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")
        for state in (paths.arrivals, paths.checkpoint):
            shutil.rmtree(state, ignore_errors=True)


def _run(spark: SparkSession, settings: Settings, paths: StreamPaths, run_id: str) -> StreamResult:
    result = StreamResult(logged=log_arrivals(settings, paths))

    def each(arrivals: DataFrame, batch_id: int) -> None:
        result.batches.append(process_batch(arrivals, batch_id, settings, run_id))

    query = (
        spark.readStream.schema(ARRIVALS_SCHEMA)
        .option("maxFilesPerTrigger", MAX_FILES_PER_BATCH)
        .json(str(paths.arrivals))
        .writeStream.foreachBatch(each)
        .option("checkpointLocation", str(paths.checkpoint))
        .trigger(availableNow=True)
        .queryName(f"{FEED}_stream")
        .start()
    )
    query.awaitTermination()
    return result


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
        sales = spark.createDataFrame([], "product_id long, order_date date, quantity long")
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
    notified = spark.createDataFrame(
        [(r["product_id"], r["as_of_date"], r["stock_on_hand"]) for r in rows],
        "product_id long, alert_date date, stock_on_hand long",
    ).withColumns({"notified_at": F.current_timestamp(), "_run_id": F.lit(run_id)})
    storage.insert_missing(notified, name, ["product_id", "alert_date"])
