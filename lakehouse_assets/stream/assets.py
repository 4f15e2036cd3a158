"""The inventory stream as assets: micro-batch runs a sensor launches as files land.

``silver/inventory_stream`` takes every inventory event that landed since the last run
(Spark Structured Streaming, ``availableNow``, exactly once: ``spark_jobs/stream.py``), and
``gold/low_stock_now`` then recomputes current stock and days of cover, posting one Slack
message per product newly under the threshold per day (``gold/low_stock_notifications``
remembers which). Both run in one job and one JVM; at most one such run is in flight.
"""

import hashlib

import yaml
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    multi_asset,
    sensor,
)

from lakehouse_assets.annotations import OWNERS, code_reference, layer
from lakehouse_assets.automation.alerts import WEBHOOK_ENV, post
from lakehouse_assets.automation.landing import LandingResource
from lakehouse_assets.jobs import MICRO_BATCH
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.resources.catalog import table_column_schema
from lakehouse_assets.sources import source_key
from spark_jobs import stream
from spark_jobs.registry import SOURCES
from spark_jobs.settings import REPO_ROOT
from spark_jobs.storage import day_of_object

JOB = "inventory_micro_batch"
STREAM_KEY = AssetKey(["silver", "inventory_stream"])
STREAM_QUARANTINE_KEY = AssetKey(["silver", "inventory_stream_quarantine"])
LOW_STOCK_KEY = AssetKey(["gold", "low_stock_now"])
NOTIFIED_KEY = AssetKey(["gold", "low_stock_notifications"])
QUARANTINE_CHECK = "no_events_quarantined"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]

# A failed micro-batch is replayed by its retry (every write is idempotent), also after a
# step failure, which the instance's run_retries leave alone by default.
RETRY = {"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "true"}

INVENTORY = next(s for s in SOURCES if s.name == stream.FEED)


def low_stock_rule() -> stream.LowStockRule:
    """The dbt project's definition of low stock (its ``vars``), shared with low_stock_alerts."""
    project = yaml.safe_load((REPO_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    variables = project["vars"]
    return stream.LowStockRule(int(variables["low_stock_days"]), int(variables["velocity_days"]))


def _common(table_layer: str) -> dict:
    return {
        # A group of their own: the stream's four tables side by side in the UI, and the
        # daily layers' graphs as they were. The layer stays a tag (`tag:layer=silver`).
        "group_name": "stream",
        "kinds": {"spark", "iceberg"},
        "owners": OWNERS,
        "tags": {**layer(table_layer), MICRO_BATCH[0]: MICRO_BATCH[1]},
        "metadata": code_reference("spark_jobs/stream.py", "def process_batch", "stream logic"),
    }


@multi_asset(
    name="inventory_stream",
    specs=[
        AssetSpec(
            STREAM_KEY,
            deps=[source_key(INVENTORY), AssetKey(["silver", "products"])],
            description="Every inventory event once (by Kafka topic, partition and offset), "
            "added by micro-batches minutes after its file lands; Silver's inventory rules, "
            "and events older than the watermark quarantined.",
            **_common("silver"),
        ),
        AssetSpec(
            STREAM_QUARANTINE_KEY,
            deps=[source_key(INVENTORY)],
            description="Inventory events the stream refused, with the rules they broke "
            f"(Silver's, and {stream.LATE_RULE}).",
            **_common("silver"),
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=STREAM_KEY,
            description="[warn] the run's micro-batches quarantined no event (per rule in the "
            "metadata)",
        )
    ],
)
def inventory_stream(context: AssetExecutionContext, spark: SparkResource):
    result = stream.run_inventory_stream(spark.session, spark.settings(), context.run_id)
    quarantined = result.quarantined()
    summary = {
        "objects_logged": result.logged,
        "micro_batches": len(result.batches),
        "objects_read": result.total("objects"),
        "lines_read": result.total("lines"),
        "events_added": result.total("events_added"),
        "redelivered": result.total("redelivered"),
        "late": result.total("late"),
        "quarantined": quarantined,
        "watermark": next((b.watermark for b in reversed(result.batches) if b.watermark), ""),
    }
    context.log.info(f"inventory stream: {summary}")
    yield MaterializeResult(
        asset_key=STREAM_KEY,
        metadata={
            **summary,
            "dagster/row_count": result.total("events_added"),
            "dagster/table_name": stream.STREAM_TABLE,
            "dagster/column_schema": table_column_schema(spark.settings(), stream.STREAM_TABLE),
        },
    )
    yield MaterializeResult(
        asset_key=STREAM_QUARANTINE_KEY,
        metadata={
            "dagster/row_count": sum(quarantined.values()),
            "dagster/table_name": stream.QUARANTINE_TABLE,
            "rules": quarantined,
        },
    )
    yield AssetCheckResult(
        asset_key=STREAM_KEY,
        check_name=QUARANTINE_CHECK,
        passed=not quarantined,
        severity=AssetCheckSeverity.WARN,
        metadata={"quarantined": quarantined, "rows": sum(quarantined.values())},
    )


def alert_text(row: dict, rule: stream.LowStockRule) -> str:
    name = row["product_name"] or f"product {row['product_id']}"
    return (
        f":warning: Low stock: {name} (product {row['product_id']}) has "
        f"{row['stock_on_hand']} units, {row['days_of_cover']} days of cover at "
        f"{row['units_per_day']} units/day (threshold {rule.low_stock_days} days)"
    )


@multi_asset(
    name="low_stock_now",
    specs=[
        AssetSpec(
            LOW_STOCK_KEY,
            deps=[STREAM_KEY, AssetKey(["gold", "fct_orders"]), AssetKey(["silver", "products"])],
            description="Current stock per product and warehouse, and the product's days of "
            "cover at its recent sales velocity; refreshed by every micro-batch run.",
            **_common("gold"),
        ),
        AssetSpec(
            NOTIFIED_KEY,
            deps=[STREAM_KEY],
            description="Products a low-stock alert was posted for: one per product per day.",
            **_common("gold"),
        ),
    ],
)
def low_stock_now(context: AssetExecutionContext, spark: SparkResource):
    session, settings, rule = spark.session, spark.settings(), low_stock_rule()
    now_table, notified_table = stream.NOW_TABLE, stream.NOTIFIED_TABLE
    computed = stream.low_stock_now(session, rule, context.run_id)
    if computed is None:
        context.log.info("no inventory event has been streamed yet: nothing to compute")
        yield MaterializeResult(asset_key=LOW_STOCK_KEY, metadata={"dagster/row_count": 0})
        yield MaterializeResult(asset_key=NOTIFIED_KEY, metadata={"alerts_posted": 0})
        return
    now = computed.localCheckpoint()
    stream.replace_table(now, now_table)
    fresh = stream.newly_low(session, now, notified_table)
    url = settings.slack_webhook_url
    sent, failed = [], []
    if fresh and not url:
        context.log.warning(f"{len(fresh)} products newly low; {WEBHOOK_ENV} is not set")
    for row in fresh if url else []:
        try:
            post(url, {"text": alert_text(row, rule), "product_id": row["product_id"]})
            sent.append(row)
        except OSError as exc:  # recorded below only if posted: the next run retries
            failed.append(f"{row['product_id']}: {exc}")
    stream.record_notified(session, sent, notified_table, context.run_id)
    low = now.where("below_threshold").select("product_id").distinct().count()
    yield MaterializeResult(
        asset_key=LOW_STOCK_KEY,
        metadata={
            "dagster/row_count": now.count(),
            "dagster/table_name": now_table,
            "products_below_threshold": low,
            "threshold_days": rule.low_stock_days,
            "velocity_days": rule.velocity_days,
        },
    )
    yield MaterializeResult(
        asset_key=NOTIFIED_KEY,
        metadata={
            "dagster/table_name": notified_table,
            "alerts_posted": len(sent),
            "products_posted": ", ".join(str(r["product_id"]) for r in sent),
        },
    )
    if failed:
        raise Failure(f"{len(failed)} low-stock alerts not posted (retried next run): {failed}")


inventory_micro_batch_job = define_asset_job(
    JOB,
    selection=AssetSelection.tag(*MICRO_BATCH),
    description="One micro-batch run: new inventory events, then current stock and alerts.",
)


def arrivals_digest(objects) -> str:
    versions = sorted(f"{o.key}@{o.version}" for o in objects if day_of_object(o.key))
    return hashlib.sha256("\n".join(versions).encode()).hexdigest()


@sensor(
    name="inventory_micro_batches",
    job=inventory_micro_batch_job,
    minimum_interval_seconds=30,
    # Opt-in: on the embedded default (one run at a time) every inventory file that lands
    # starts a run. Turn it on in the UI or with `dagster sensor start inventory_micro_batches`.
    default_status=DefaultSensorStatus.STOPPED,
    description="Launches a micro-batch run of the inventory stream when inventory files land "
    "(arrivals during a run wait for the next one: at most one run in flight).",
)
def inventory_micro_batches(context: SensorEvaluationContext, landing: LandingResource):
    objects = landing.list(stream.FEED)
    digest = arrivals_digest(objects)
    if digest == context.cursor:
        return SkipReason(f"no new {stream.FEED} objects among {len(objects)}")
    in_flight = context.instance.get_run_records(
        RunsFilter(job_name=JOB, statuses=IN_FLIGHT), limit=1
    )
    if in_flight:
        run_id = in_flight[0].dagster_run.run_id
        # The cursor stays: once that run ends, the next tick launches one for these arrivals.
        return SkipReason(f"micro-batch run {run_id[:8]} is in flight; new arrivals wait for it")
    return SensorResult(
        run_requests=[RunRequest(run_key=f"{JOB}:{digest[:16]}", tags=RETRY)], cursor=digest
    )
