"""Generated data through Bronze, Silver and the dbt Gold models, day by day and as a backfill.

Five days are materialised one partition at a time, then again as one single-run backfill (one
run, one Spark job per asset over the whole range): the tables must come out identical.
Dates are June 2026, later than every other test's, so no other test's rows fall in them.
"""

from __future__ import annotations

from datetime import date

import pytest
from dagster import DagsterInstance, materialize

from lakehouse_assets.definitions import defs
from lakehouse_assets.generate import generate
from lakehouse_assets.resources import SparkResource, dbt_resource

START = date(2026, 6, 1)
DAYS = tuple(f"2026-06-0{d}" for d in range(1, 6))
RANGE_TAGS = {
    "dagster/asset_partition_range_start": DAYS[0],
    "dagster/asset_partition_range_end": DAYS[-1],
}

# Which Silver rule catches each kind of dirt the generator injects.
RULE_FOR = {
    ("orders", "negative_amount"): "amount_non_negative",
    ("orders", "unknown_status"): "status_accepted",
    ("orders", "null_customer"): "customer_id_not_null",
    ("orders", "missing_customer"): "customer_exists",
    ("orders", "missing_product"): "product_exists",
    ("clickstream", "malformed"): "malformed_json",
    ("clickstream", "null_user"): "user_id_not_null",
    ("clickstream", "unknown_event_type"): "event_type_accepted",
    ("inventory", "malformed"): "malformed_json",
}


@pytest.fixture(scope="module")
def manifest(settings):
    return generate(settings, START, len(DAYS), scale="tiny", seed=11)


# Per-day tables and their day column: what a partition owns.
DAY_TABLES = {
    "bronze.orders": "_partition_date",
    "bronze.clickstream": "_partition_date",
    "bronze.inventory_events": "_partition_date",
    "silver.orders": "order_date",
    "silver.orders_quarantine": "_partition_date",
    "silver.clickstream": "ingest_date",
    "silver.clickstream_quarantine": "_partition_date",
    "silver.inventory": "snapshot_date",
    "gold.fct_orders": "order_date",
    "gold.agg_daily_sales": "order_date",
    "gold.customer_segments": "order_date",
    "gold.product_funnel": "event_date",
    "gold.low_stock_alerts": "as_of_date",
}
LINEAGE = {"_run_id", "_ingested_at", "_quarantined_at", "record"}


def snapshot(spark) -> dict[str, list[tuple]]:
    out = {}
    for table, column in DAY_TABLES.items():
        df = spark.table(f"lakehouse.{table}").where(in_window(column))
        out[table] = sorted(
            tuple(r) for r in df.select([c for c in df.columns if c not in LINEAGE]).collect()
        )
    return out


@pytest.fixture(scope="module")
def day_by_day(manifest, spark):
    """Each day as its own run, as the daily schedule would."""
    daily = [
        a
        for a in defs.assets
        if a.partitions_def is not None and a.node_def.name != "gold__data_quality_daily"
    ]
    for day in DAYS:
        result = materialize(
            daily, partition_key=day, resources={"spark": SparkResource(), "dbt": dbt_resource}
        )
        assert result.success, day
    return snapshot(spark)


@pytest.fixture(scope="module")
def backfill(day_by_day, spark):
    """All days as one run of the main job: what `make demo` and a UI backfill do."""
    job = defs.resolve_job_def("daily_lakehouse")
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), tags=RANGE_TAGS)
    assert result.success
    return result


def in_window(column):
    return f"{column} between '{DAYS[0]}' and '{DAYS[-1]}'"


def injected(manifest, source, kind):
    return sum(day.get(source, {}).get(kind, 0) for day in manifest.per_day.values())


def test_every_silver_table_reconciles_with_bronze(backfill):
    for node in ("silver_orders", "silver_clickstream", "silver_inventory", "silver_customers"):
        meta = backfill.asset_materializations_for_node(node)[0].metadata
        bronze, kept = meta["bronze_rows"].value, meta["silver_rows"].value
        assert bronze == kept + meta["quarantined"].value + meta["duplicates_removed"].value
        assert bronze > 0


def test_quarantine_counts_equal_the_injected_dirt_per_rule(spark, manifest, backfill):
    for (source, kind), rule in RULE_FOR.items():
        table = f"lakehouse.silver.{source}_quarantine"
        caught = spark.table(table).where(in_window("_partition_date"))
        caught = caught.where(f"array_contains(rules, '{rule}')").count()
        assert caught == injected(manifest, source, kind) > 0, (source, kind, rule)


def test_duplicates_removed_equal_the_injected_redeliveries(manifest, backfill):
    meta = backfill.asset_materializations_for_node("silver_clickstream")[0].metadata
    assert meta["duplicates_removed"].value == injected(manifest, "clickstream", "duplicates")


def test_gold_holds_every_valid_order_once(spark, backfill):
    silver = spark.table("lakehouse.silver.orders").where(in_window("order_date"))
    gold = spark.table("lakehouse.gold.fct_orders").where(in_window("order_date"))
    assert gold.count() == silver.count() == gold.select("order_id").distinct().count()
    revenue = spark.table("lakehouse.gold.agg_daily_sales").where(in_window("order_date"))
    total = revenue.agg({"revenue": "sum"}).first()[0]
    expected = gold.where("is_sale").agg({"amount": "sum"}).first()[0]
    assert total == expected


def test_a_single_run_backfill_equals_the_day_by_day_runs(spark, day_by_day, backfill):
    after = snapshot(spark)
    for table in DAY_TABLES:
        assert after[table] == day_by_day[table], table
    # Every day has rows, so the comparison compares something.
    for table, column in (("bronze.orders", "_partition_date"), ("gold.fct_orders", "order_date")):
        days = {
            r[0]
            for r in spark.table(f"lakehouse.{table}")
            .where(in_window(column))
            .select(column)
            .distinct()
            .collect()
        }
        assert len(days) == len(DAYS), table


def test_the_backfill_was_one_run_with_one_step_per_asset(backfill):
    steps = [e.step_key for e in backfill.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert steps.count("bronze__orders") == 1 and steps.count("gold_daily") == 1
    # One step wrote all five days, and Dagster records each day as materialised.
    materialized = backfill.asset_materializations_for_node("bronze__orders")
    assert sorted(m.partition for m in materialized) == list(DAYS)
    assert set(materialized[0].metadata["rows_per_day"].value) == set(DAYS)
