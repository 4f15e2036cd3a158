"""Generated data through Bronze, Silver and the dbt Gold models in one Dagster run.

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
DAYS = ("2026-06-01", "2026-06-02")
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


@pytest.fixture(scope="module")
def backfill(manifest, spark):
    """Both days as one run of the main job: what `make demo` and a backfill do."""
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


def test_rerunning_one_day_replaces_that_day_and_leaves_the_other(spark, backfill):
    tables = {
        "bronze.orders": "_partition_date",
        "bronze.clickstream": "_partition_date",
        "silver.clickstream": "ingest_date",
        "silver.orders_quarantine": "_partition_date",
        "gold.fct_orders": "order_date",
        "gold.agg_daily_sales": "order_date",
        "gold.product_funnel": "event_date",
    }

    def counts():
        return {
            (table, day): spark.table(f"lakehouse.{table}").where(f"{column} = '{day}'").count()
            for table, column in tables.items()
            for day in DAYS
        }

    before = counts()
    assets = [*defs.assets]
    result = materialize(
        assets,
        partition_key=DAYS[-1],
        resources={"spark": SparkResource(), "dbt": dbt_resource},
    )
    assert result.success
    assert counts() == before
    assert all(before[(t, d)] > 0 for t in ("bronze.orders", "gold.fct_orders") for d in DAYS)
