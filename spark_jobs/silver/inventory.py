"""silver.inventory: stock per product and warehouse at the end of each day, from the
inventory events a Kafka sink landed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import quality as q
from spark_jobs.silver import checks
from spark_jobs.silver.checks import TableRules
from spark_jobs.silver.common import (
    BRONZE_DAY,
    DEDUP_LOOKBACK_DAYS,
    Lateness,
    SilverTable,
    Split,
    first_landed,
    quarantine_rows,
    replace,
    with_products,
)
from spark_jobs.silver.json_lines import (
    json_rules,
    line_key,
    schema_report,
    typed_lines,
    without_spent_text,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

FIELDS = {
    "topic": "string",
    "partition": "int",
    "offset": "long",
    "key": "string",
    "event_id": "string",
    "product_id": "long",
    "warehouse_id": "string",
    "change": "long",
    "stock_level": "long",
    "reason": "string",
    "event_ts": "timestamp",
}
REQUIRED = {
    k: FIELDS[k]
    for k in ("topic", "partition", "offset", "product_id", "warehouse_id", "change")
    + ("stock_level", "event_ts")
}

QUALITY = TableRules(
    rows=json_rules(
        FIELDS,
        (
            q.not_null("product_id", raw="product_id_raw"),
            q.not_null("warehouse_id"),
            q.not_null("stock_level", raw="stock_level_raw"),
            q.not_null("event_ts", raw="event_ts_raw"),
            q.within_days("event_ts", BRONZE_DAY, before_days=DEDUP_LOOKBACK_DAYS),
            q.between("stock_level", 0, name="stock_level_non_negative"),
            *q.references("product_id", "_product_found", "silver.products", "product"),
        ),
    ),
    checks=(
        checks.schema(REQUIRED),
        checks.new_fields(list(FIELDS)),
        checks.reconciles(),
        checks.unique(["snapshot_date", "product_id", "warehouse_id"]),
    ),
)


def clean_inventory_events(
    bronze: DataFrame,
    products: DataFrame | None,
    run_id: str,
    lateness: Lateness | None = None,
    keep_lines: bool = False,
) -> Split:
    """Parse Kafka-sink lines; a redelivered offset is a duplicate. ``keep_lines``: the kept
    rows keep their raw line too (``json_lines.without_spent_text``)."""
    lateness = lateness or Lateness()
    typed = typed_lines(bronze, FIELDS, REQUIRED)
    # Judged before ranking: one checkpoint for both (as clickstream's).
    judged = q.mark_rules(with_products(typed, products, lateness), QUALITY.rows)
    ranked = q.rank_first(
        without_spent_text(judged, list(FIELDS), keep_lines),
        ["topic", "partition", "offset"],
        first_landed(),
    )
    kept, duplicates = q.split_ranked(ranked)
    valid, bad = q.split_marked(kept)
    offset_key = F.concat_ws(":", "topic", "partition", "offset")
    return Split(
        valid.withColumn("snapshot_date", F.col(BRONZE_DAY)),
        quarantine_rows(
            bad, F.when(F.col("offset").isNotNull(), offset_key).otherwise(line_key()), run_id
        ),
        duplicates,
        **schema_report(ranked, list(FIELDS)),
    )


def daily_stock(events: DataFrame, run_id: str) -> DataFrame:
    """Stock per product and warehouse at the end of each day, with the day's movements."""
    last = F.max_by(
        F.col("stock_level"), F.struct(F.col("event_ts"), F.col("partition"), F.col("offset"))
    )
    return events.groupBy("snapshot_date", "product_id", "warehouse_id").agg(
        last.alias("stock_level"),
        F.sum(F.when(F.col("reason") == "sale", -F.col("change")).otherwise(0))
        .cast("long")
        .alias("units_sold"),
        F.sum(F.when(F.col("change") > 0, F.col("change")).otherwise(0))
        .cast("long")
        .alias("units_received"),
        F.count(F.lit(1)).alias("events"),
        F.max("event_ts").alias("last_event_ts"),
        F.lit(run_id).alias("_run_id"),
    )


TABLE = SilverTable(
    QUALITY,
    lambda bronze, batch: clean_inventory_events(
        bronze, batch.reads["products"], batch.run_id, batch.lateness
    ),
    replace("snapshot_date", ("snapshot_date", "product_id", "warehouse_id")),
    batch_day="snapshot_date",
    unique_scope="snapshot_date",
    to_table=daily_stock,
)
