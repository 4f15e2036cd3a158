"""silver.clickstream: web events parsed from the raw lines, one row per event_id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import quality as q
from spark_jobs.quality import WARNINGS_COLUMN
from spark_jobs.silver import checks
from spark_jobs.silver.checks import TableRules
from spark_jobs.silver.common import (
    BRONZE_DAY,
    DEDUP_LOOKBACK_DAYS,
    RAW_LINE,
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

EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "search")

FIELDS = {
    "event_id": "string",
    "user_id": "long",
    "session_id": "string",
    "event_type": "string",
    "page_url": "string",
    "timestamp": "timestamp",
    "properties": "string",
}
REQUIRED = {k: FIELDS[k] for k in ("event_id", "user_id", "event_type", "timestamp")}

QUALITY = TableRules(
    rows=json_rules(
        FIELDS,
        (
            q.not_null("event_id", action="fail"),
            q.not_null("user_id", raw="user_id_raw"),
            q.not_null("event_ts", raw="event_ts_raw"),
            # Older than the dedup look-back, a redelivery could not be told from an event.
            q.within_days("event_ts", BRONZE_DAY, before_days=DEDUP_LOOKBACK_DAYS),
            q.accepted_values("event_type", EVENT_TYPES),
            q.not_null("session_id", action="warn"),
            *q.references("product_id", "_product_found", "silver.products", "product"),
        ),
    ),
    checks=(
        checks.schema(REQUIRED),
        checks.new_fields(list(FIELDS)),
        checks.reconciles(),
        checks.unique(["event_id"]),
        checks.row_count_band(),
        checks.freshness("event_ts", max_lag_hours=2),
    ),
)


def clean_clickstream(
    bronze: DataFrame,
    earlier_event_ids: DataFrame | None,
    run_id: str,
    products: DataFrame | None = None,
    lateness: Lateness | None = None,
) -> Split:
    """Parse each raw line; one row per event_id, the first landed wins.

    ``earlier_event_ids`` are the ids Silver already holds from days before the window: an
    event redelivered on a later day is a duplicate, not a new event. A click on a product
    Silver does not know yet is held until the product arrives.
    """
    lateness = lateness or Lateness()
    typed = typed_lines(bronze, FIELDS, REQUIRED, renamed={"timestamp": "event_ts"})
    # Both ids from one parse of the properties: a get_json_object each was a second and a
    # third JSON parser a line (about 1 s at 1 M events). A value of another JSON type reads
    # as its text, then casts, as get_json_object's did; a key given twice reads as its last
    # value (get_json_object took the first).
    ids = F.from_json("properties", "struct<product_id:string,order_id:string>")
    typed = (
        typed.withColumn("_ids", ids)
        .withColumns({key: F.col(f"_ids.{key}").cast("long") for key in ("product_id", "order_id")})
        .drop("_ids")
    )
    if earlier_event_ids is not None:
        # Joined before ranking, on the key the ranking partitions by: one shuffle for both
        # (the products between them are few: Spark broadcasts them).
        seen = earlier_event_ids.select(F.col("event_id").alias("_seen")).distinct()
        typed = typed.join(seen, typed.event_id == seen._seen, "left")
    else:
        typed = typed.withColumn("_seen", F.lit(None).cast("string"))
    # Judged before ranking, so one checkpoint (the ranking's) holds the batch ranked and
    # judged: a second pass over a million wide rows was 6 s. The rules are row-local, so a
    # duplicate's verdict changes nothing; only the first copy's is used.
    judged = q.mark_rules(with_products(typed, products, lateness), QUALITY.rows)
    ranked = q.rank_first(without_spent_text(judged, list(FIELDS)), ["event_id"], first_landed())
    # The first copy in the batch, unless an earlier day already holds the event.
    first = (F.col(q.RANK_COLUMN) == 1) & F.col("_seen").isNull()
    valid, bad = q.split_marked(ranked.where(first).drop(q.RANK_COLUMN, "_seen"))
    duplicates = ranked.where(~first).drop(q.RANK_COLUMN, "_seen")
    return Split(
        valid.select(
            "event_id",
            "user_id",
            "session_id",
            "event_type",
            "page_url",
            "event_ts",
            F.to_date("event_ts").alias("event_date"),
            F.hour("event_ts").alias("event_hour"),
            "product_id",
            "order_id",
            "properties",
            F.col(BRONZE_DAY).alias("ingest_date"),
            F.col("_bronze._source_file").alias("_source_file"),
            F.col("_bronze._line_number").alias("_line_number"),
            F.lit(run_id).alias("_run_id"),
            WARNINGS_COLUMN,
            F.col("_bronze.raw_line").alias(RAW_LINE),  # for additive schema evolution
        ),
        quarantine_rows(bad, F.coalesce(F.col("event_id"), line_key()), run_id),
        duplicates,
        **schema_report(ranked, list(FIELDS)),
    )


TABLE = SilverTable(
    QUALITY,
    lambda bronze, batch: clean_clickstream(
        bronze, batch.earlier, batch.run_id, batch.reads["products"], batch.lateness
    ),
    replace("ingest_date", ("event_id",)),
    batch_day="ingest_date",
    unique_scope="ingest_date",
    earlier_days=DEDUP_LOOKBACK_DAYS,
)
