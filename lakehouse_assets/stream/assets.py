"""The inventory stream as assets: micro-batch runs a sensor launches as files land.

``silver/inventory_stream`` takes every inventory event that landed since the last run
(Spark Structured Streaming, ``availableNow``, exactly once: ``spark_jobs/stream.py``), and
``gold/low_stock_now`` then recomputes current stock and days of cover, posting one Slack
message per product newly under the threshold per day (``gold/low_stock_notifications``
remembers which). Both run in one job and one JVM; at most one such run is in flight.
"""

import hashlib
import logging
import time
from dataclasses import dataclass, field

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
from pyspark.sql import DataFrame, SparkSession

from lakehouse_assets.annotations import OWNERS, code_reference, layer
from lakehouse_assets.automation.alerts import WEBHOOK_ENV, post
from lakehouse_assets.automation.landing import LandingResource
from lakehouse_assets.jobs import MICRO_BATCH
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.resources.catalog import table_column_schema
from lakehouse_assets.sources import source_key
from spark_jobs import stream
from spark_jobs.registry import SOURCES
from spark_jobs.settings import REPO_ROOT, Settings
from spark_jobs.storage import day_of_object

JOB = "inventory_micro_batch"
STREAM_KEY = AssetKey(["silver", "inventory_stream"])
STREAM_QUARANTINE_KEY = AssetKey(["silver", "inventory_stream_quarantine"])
ARRIVALS_KEY = AssetKey(["silver", "inventory_stream_arrivals"])
BATCHES_KEY = AssetKey(["silver", "inventory_stream_batches"])
# Tables the weekly housekeeping leaves alone: the stream compacts its arrivals log itself.
SELF_MAINTAINED = [ARRIVALS_KEY]
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
        AssetSpec(
            ARRIVALS_KEY,
            deps=[source_key(INVENTORY)],
            description="The stream's source: one row per landed inventory object version, "
            "appended at the start of each run (Spark streams this table).",
            **_common("silver"),
        ),
        AssetSpec(
            BATCHES_KEY,
            deps=[source_key(INVENTORY)],
            description="One row per micro-batch: what it was judged with (watermark, "
            "silver.products snapshot; a replay reuses them) and what it did.",
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
    settings = spark.settings()
    result = stream.run_inventory_stream(spark.session, settings, context.run_id)
    quarantined = result.quarantined()
    summary = {
        "objects_logged": result.logged,
        "micro_batches": len(result.batches),
        "micro_batches_replayed": sum(b.replayed for b in result.batches),
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
            "dagster/column_schema": table_column_schema(settings, stream.STREAM_TABLE),
        },
    )
    yield MaterializeResult(
        asset_key=ARRIVALS_KEY,
        metadata={"objects_logged": result.logged, "dagster/table_name": stream.ARRIVALS_TABLE},
    )
    yield MaterializeResult(
        asset_key=BATCHES_KEY,
        metadata={
            "micro_batches": len(result.batches),
            "batch_ids": ", ".join(str(b.batch_id) for b in result.batches) or "none",
            "dagster/table_name": stream.BATCHES_TABLE,
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
    rule = low_stock_rule()
    alerts = refresh_and_alert(spark.session, spark.settings(), rule, context.run_id, context.log)
    if alerts is None:
        context.log.info("no inventory event has been streamed yet: nothing to compute")
        yield MaterializeResult(asset_key=LOW_STOCK_KEY, metadata={"dagster/row_count": 0})
        yield MaterializeResult(asset_key=NOTIFIED_KEY, metadata={"alerts_posted": 0})
        return
    low = alerts.now.where("below_threshold").select("product_id").distinct().count()
    yield MaterializeResult(
        asset_key=LOW_STOCK_KEY,
        metadata={
            "dagster/row_count": alerts.now.count(),
            "dagster/table_name": stream.NOW_TABLE,
            "products_below_threshold": low,
            "threshold_days": rule.low_stock_days,
            "velocity_days": rule.velocity_days,
        },
    )
    yield MaterializeResult(
        asset_key=NOTIFIED_KEY,
        metadata={
            "dagster/table_name": stream.NOTIFIED_TABLE,
            "alerts_posted": len(alerts.sent),
            "products_posted": ", ".join(str(r["product_id"]) for r in alerts.sent),
        },
    )
    if alerts.failed:
        failed = alerts.failed
        raise Failure(f"{len(failed)} low-stock alerts not posted (retried next run): {failed}")


@dataclass
class Alerts:
    now: DataFrame  # gold.low_stock_now as written
    sent: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def refresh_and_alert(
    session: SparkSession,
    settings: Settings,
    rule: stream.LowStockRule,
    run_id: str,
    log: logging.Logger,  # the step's (Dagster's log manager is one)
) -> Alerts | None:
    """Rewrite ``gold.low_stock_now``, then post each product newly low and record it right
    after its post (a run killed midway leaves recorded exactly the alerts that went out; a
    failed post is not recorded, so the next run retries it). None before any event.

    Under the stream's lock: two runs at once (a retry beside a UI materialisation, on a
    catalog that lets runs overlap) would both find a product newly low and both post.
    """
    with stream.exclusive(stream.StreamPaths.of(settings)):
        computed = stream.low_stock_now(session, rule, run_id)
        if computed is None:
            return None
        alerts = Alerts(computed.localCheckpoint())
        stream.replace_table(alerts.now, stream.NOW_TABLE)
        fresh = stream.newly_low(session, alerts.now, stream.NOTIFIED_TABLE)
        url = settings.slack_webhook_url
        if not url:
            if fresh:
                log.warning(f"{len(fresh)} products newly low; {WEBHOOK_ENV} is not set")
            return alerts
        for row in fresh:
            try:
                post(url, {"text": alert_text(row, rule), "product_id": row["product_id"]})
            except OSError as exc:  # urllib's errors, HTTP ones included
                alerts.failed.append(f"{row['product_id']}: {exc}")
                continue
            stream.record_notified(session, [row], stream.NOTIFIED_TABLE, run_id)
            alerts.sent.append(row)
        return alerts


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
    "(arrivals during a run wait for the next one: at most one run in flight), and again "
    "after a failed run (5 minutes, doubling per failure in a row, at most an hour).",
)
def inventory_micro_batches(context: SensorEvaluationContext, landing: LandingResource):
    objects = landing.list(stream.FEED)
    digest = arrivals_digest(objects)
    in_flight = context.instance.get_run_records(
        RunsFilter(job_name=JOB, statuses=IN_FLIGHT), limit=1
    )
    retry = None
    if digest == context.cursor:
        retry = failed_to_retry(context.instance)
        if retry is None:
            return SkipReason(f"no new {stream.FEED} objects among {len(objects)}")
    if in_flight:
        run_id = in_flight[0].dagster_run.run_id
        # The cursor stays: once that run ends, the next tick launches one for these arrivals.
        return SkipReason(f"micro-batch run {run_id[:8]} is in flight; new arrivals wait for it")
    run_key = f"{JOB}:{digest[:16]}" + (f":after-{retry[:8]}" if retry else "")
    return SensorResult(run_requests=[RunRequest(run_key=run_key, tags=RETRY)], cursor=digest)


# A run that failed after its retries is tried again without waiting for new arrivals: after
# this long, doubling with each failure in a row (up to the cap), so a broken webhook or a
# stopped catalog neither strands the landed events nor pages every 30 seconds.
RETRY_FAILED_AFTER_S = 300
RETRY_FAILED_CAP_S = 3600


def failed_to_retry(instance) -> str | None:
    """The id of the job's newest run when it failed and its back-off has passed."""
    records = instance.get_run_records(RunsFilter(job_name=JOB), limit=16)
    failed: set[str] = set()  # run requests, not runs: a request's retries are one failure
    for record in records:
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        run = record.dagster_run
        failed.add(run.tags.get("dagster/root_run_id", run.run_id))
    failures = len(failed)
    if not failures:
        return None
    newest = records[0]
    ended = newest.end_time or newest.update_timestamp.timestamp()
    wait_s = min(RETRY_FAILED_AFTER_S * 2 ** (failures - 1), RETRY_FAILED_CAP_S)
    return newest.dagster_run.run_id if time.time() - ended >= wait_s else None
