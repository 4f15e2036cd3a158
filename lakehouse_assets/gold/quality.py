"""gold.data_quality_daily: per day and table, how the checks went and what was quarantined.

It reads check results from the Dagster instance (the system of record for checks, also for
dbt tests) and quarantine counts from the Silver quarantine tables. It runs in its own job,
after the main job, whether that run succeeded or not: a bad day is exactly the day whose
score someone wants to see.
"""

from collections import Counter, defaultdict
from datetime import date

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)

from lakehouse_assets.annotations import OWNERS, layer
from lakehouse_assets.gold.assets import gold_current_state, gold_daily
from lakehouse_assets.partitions import (
    RANGE_END,
    RANGE_START,
    daily_partitions,
    single_run,
    window_of,
)
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.silver import silver_assets
from spark_jobs import silver, storage
from spark_jobs.window import DayWindow

HISTORY = 200  # check executions looked at per check, newest first
STATUSES = ("passed", "warned", "failed", "not_run")


def score(counts: Counter) -> float | None:
    """100 for all passed; a warning counts half; checks that did not run do not count."""
    judged = counts["passed"] + counts["warned"] + counts["failed"]
    if not judged:
        return None
    return round(100 * (counts["passed"] + 0.5 * counts["warned"]) / judged, 1)


class _RunDays:
    """Which days a run covered: its partition, or its single-run backfill range."""

    def __init__(self, instance: DagsterInstance):
        self.instance, self.cache = instance, {}

    def covers(self, run_id: str, day: str) -> bool:
        if run_id not in self.cache:
            run = self.instance.get_run_by_id(run_id)
            tags = run.tags if run else {}
            if RANGE_START in tags:
                self.cache[run_id] = (tags[RANGE_START], tags[RANGE_END])
            else:
                part = tags.get("dagster/partition")
                self.cache[run_id] = (part, part) if part else None
        span = self.cache[run_id]
        return span is not None and span[0] <= day <= span[1]


def check_outcomes(
    instance: DagsterInstance, keys: list[AssetCheckKey], window: DayWindow
) -> dict[tuple[str, str], Counter]:
    """(day, table) -> how many of its checks passed, warned, failed or did not run."""
    runs = _RunDays(instance)
    out: dict[tuple[str, str], Counter] = defaultdict(Counter)
    days = [d.isoformat() for d in window.days]
    for key in keys:
        table = ".".join(key.asset_key.path)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY)
        for day in days:
            for record in history:  # newest first: the first that covers the day decides
                if record.partition not in (None, day):
                    continue
                if record.partition is None and not runs.covers(record.run_id, day):
                    continue
                data = record.event.dagster_event.event_specific_data if record.event else None
                if not isinstance(data, AssetCheckEvaluation):
                    out[(day, table)]["not_run"] += 1
                elif data.passed:
                    out[(day, table)]["passed"] += 1
                elif data.severity == AssetCheckSeverity.ERROR:
                    out[(day, table)]["failed"] += 1
                else:
                    out[(day, table)]["warned"] += 1
                break
    return out


def quarantined(spark, window: DayWindow) -> dict[tuple[str, str], tuple[int, int, dict]]:
    """(day, table) -> (rows quarantined for good, rows held awaiting a late reference, rows
    per rule broken; a row may break several)."""
    from pyspark.sql import functions as F

    out: dict[tuple[str, str], tuple[int, int, dict]] = {}
    for name in silver.TABLES:
        table = storage.table_name("silver", f"{name}_quarantine")
        if not spark.catalog.tableExists(table):
            continue
        rows = spark.table(table).where(storage.window_condition("_partition_date", window))
        by_rule = (
            rows.select("_partition_date", F.explode("rules").alias("rule"))
            .groupBy("_partition_date", "rule")
            .count()
            .collect()
        )
        waiting = F.forall("rules", lambda rule: rule.startswith("awaiting_"))
        per_day = rows.groupBy("_partition_date").agg(
            F.count_if(~waiting).alias("final"), F.count_if(waiting).alias("awaiting")
        )
        for row in per_day.collect():
            rules = {
                r["rule"]: r["count"]
                for r in by_rule
                if r["_partition_date"] == row["_partition_date"]
            }
            key = (row["_partition_date"].isoformat(), f"silver.{name}")
            out[key] = (row["final"], row["awaiting"], rules)
    return out


QUALITY_SCHEMA = (
    "day date, table_name string, checks_passed int, checks_warned int, checks_failed int, "
    "checks_not_run int, rows_quarantined long, rows_awaiting long, "
    "quarantined_by_rule map<string,long>, score double"
)


@asset(
    key=["gold", "data_quality_daily"],
    group_name="gold",
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    deps=[AssetKey(["silver", f"{name}_quarantine"]) for name in silver.TABLES],
    kinds={"spark", "iceberg"},
    owners=OWNERS,
    tags=layer("gold"),
)
def data_quality_daily(context: AssetExecutionContext, spark: SparkResource) -> MaterializeResult:
    """Per day and table: checks passed, warned and failed, rows quarantined by rule, a score."""
    window = window_of(context)
    keys = sorted(
        {
            key
            for assets in (*silver_assets, gold_daily, gold_current_state)
            for key in assets.check_keys
        },
        key=str,
    )
    checks = check_outcomes(context.instance, keys, window)
    held = quarantined(spark.session, window)
    rows, overall = [], {}
    for day in window.days:
        iso = day.isoformat()
        total, total_rows, total_awaiting, all_rules = Counter(), 0, 0, Counter()
        for table in sorted({t for d, t in (*checks, *held) if d == iso}):
            counts = checks.get((iso, table), Counter())
            n, awaiting, by_rule = held.get((iso, table), (0, 0, {}))
            total += counts
            total_rows += n
            total_awaiting += awaiting
            all_rules.update(by_rule)
            rows.append(_row(day, table, counts, n, awaiting, by_rule))
        rows.append(_row(day, "all", total, total_rows, total_awaiting, dict(all_rules)))
        overall[iso] = score(total)
    frame = spark.session.createDataFrame(rows, QUALITY_SCHEMA)
    storage.replace_window(frame, storage.table_name("gold", "data_quality_daily"), "day", window)
    for day in window.days:  # each day's plot point is that day's own score and rows
        iso = day.isoformat()
        per_day = {"dagster/row_count": sum(1 for r in rows if r[0] == day)}
        if overall[iso] is not None:
            per_day["score"] = overall[iso]
        context.add_asset_metadata(per_day, partition_key=iso)
    known = [s for s in overall.values() if s is not None]
    table_md = "\n".join(
        [
            "| day | table | passed | warned | failed | quarantined | awaiting | score |",
            "|---|---|---|---|---|---|---|---|",
        ]
        + [
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[6]} | {r[7]} | {r[9]} |"
            for r in rows
            if r[1] == "all" or r[4] or r[3]
        ]
    )
    return MaterializeResult(
        metadata={
            "window_score": round(sum(known) / len(known), 1) if known else None,
            "score_by_day": MetadataValue.json(overall),
            "summary": MetadataValue.md(table_md),
        }
    )


def _row(
    day: date, table: str, counts: Counter, rows: int, awaiting: int, by_rule: dict[str, int]
) -> tuple:
    return (
        day,
        table,
        counts["passed"],
        counts["warned"],
        counts["failed"],
        counts["not_run"],
        rows,
        awaiting,
        by_rule,
        score(counts),
    )
