"""Type-2 history: a customer's segment and a product's cost change on day 2, and day 1's
sales and profit stay what they were, whether day 1 is re-run afterwards or both days are
backfilled in one run.

The operational database holds only each row's latest version, as a real one does: rerunning
day 1 after the change cannot extract day 1's version again, so Bronze must keep it.
Days are 2026-04-06 and 07 and keys start at 7,000,000: no other test module uses them.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from dagster import AssetSelection, materialize

from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold import DIMENSION_KEYS, gold_marts
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets
from tests.builders import (
    iceberg_scans,
    last_sql_execution,
    record_code_generation,
    write_source_db,
)

DAY1, DAY2 = "2026-04-06", "2026-04-07"
ANN, LAMP = 7_000_001, 7_000_010
ASSETS = [*bronze_assets, *silver_assets, gold_marts]
# Without the dimensions, history included: building them once is enough.
DAILY = AssetSelection.assets(*ASSETS) - AssetSelection.assets(*DIMENSION_KEYS)
RESOURCES = {"spark": SparkResource(), "dbt": dbt_resource}
BOTH_DAYS = {
    "dagster/asset_partition_range_start": DAY1,
    "dagster/asset_partition_range_end": DAY2,
}


def source(day: int) -> dict[str, list[tuple]]:
    """The operational database at the end of day 1 or day 2 (latest versions only)."""
    t1 = f"{DAY1} 08:00:00"
    ann = (ANN, "Ann", "ann@example.com", "consumer", "north", t1, t1)
    lamp = (LAMP, "Lamp", "home", 20.00, 5.00, t1)
    orders = [
        # 2 lamps on day 1: 40.00 at a cost of 5.00 each
        (7_100_001, ANN, LAMP, 2, 40.00, "placed", f"{DAY1} 09:00:00", f"{DAY1} 09:00:00"),
    ]
    if day == 2:
        changed = f"{DAY2} 10:00:00"
        ann = (ANN, "Ann", "ann@example.com", "corporate", "north", t1, changed)
        lamp = (LAMP, "Lamp", "home", 20.00, 7.00, changed)
        orders += [
            # before the change (consumer, cost 5.00), then after it (corporate, cost 7.00)
            (7_100_002, ANN, LAMP, 1, 20.00, "placed", f"{DAY2} 09:00:00", f"{DAY2} 09:00:00"),
            (7_100_003, ANN, LAMP, 1, 20.00, "placed", f"{DAY2} 11:00:00", f"{DAY2} 11:00:00"),
        ]
    return {"customers": [ann], "products": [lamp], "orders": orders}


def run(selection=DAILY, **kwargs) -> None:
    assert materialize(ASSETS, selection=selection, resources=RESOURCES, **kwargs).success


def gold(spark) -> dict[str, list[tuple]]:
    """What a reader sees of these two days: sales by segment with profit, and the facts."""
    days = f"order_date IN ('{DAY1}', '{DAY2}')"
    sales = spark.table("lakehouse.gold.agg_daily_sales").where(days)
    facts = spark.table("lakehouse.gold.fct_orders").where(f"customer_id = {ANN}")
    return {
        "sales": sorted(
            (str(r.order_date), r.customer_segment, r.sales, r.revenue, r.profit)
            for r in sales.collect()
        ),
        "facts": sorted(
            (r.order_id, r.customer_segment, r.unit_cost, r.profit) for r in facts.collect()
        ),
    }


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Spark's generated code throughout, as a large day runs: days this small run on its
    interpreted expressions elsewhere in the suite (``LAKEHOUSE_CODEGEN_MIN_ROWS``), so here
    Silver and Gold's figures, to the cent, come from the compiled path."""
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_CODEGEN_MIN_ROWS", "0")
        record_code_generation(patch, calls)
        yield calls


@pytest.fixture(scope="module")
def day_two_scans() -> dict:
    """Filled by day_by_day: every Iceberg scan of day 2's run (``builders.iceberg_scans``),
    and the files Silver orders held then, in all and of day 2."""
    return {}


@pytest.fixture(scope="module")
def day_by_day(settings, spark, compiled, day_two_scans):
    write_source_db(settings, source(1))
    run(partition_key=DAY1)
    write_source_db(settings, source(2))
    before = last_sql_execution(spark)
    run(ASSETS, partition_key=DAY2)
    day_two_scans["scans"] = iceberg_scans(spark, before)
    files = "SELECT count(*) FROM lakehouse.silver.orders.files"
    day_two_scans["files"] = spark.sql(files).first()[0]
    day_two_scans["day 2 files"] = spark.sql(
        f"{files} WHERE partition.order_date = DATE'{DAY2}'"
    ).first()[0]
    # Every Silver table and Gold compiled, and dbt's models ran so (Spark's default mode).
    assert {(what, c, m) for what, _, c, m in compiled} == {
        ("silver", True, None),
        ("gold", True, None),
        ("gold output", None, None),
    }
    return gold(spark)


D = Decimal


def test_facts_carry_the_attributes_valid_when_each_order_was_placed(day_by_day):
    assert day_by_day["facts"] == [
        (7_100_001, "consumer", D("5.00"), D("30.00")),
        (7_100_002, "consumer", D("5.00"), D("15.00")),  # 09:00, before the 10:00 change
        (7_100_003, "corporate", D("7.00"), D("13.00")),
    ]
    assert day_by_day["sales"] == [
        (DAY1, "consumer", 1, D("40.00"), D("30.00")),
        (DAY2, "consumer", 1, D("20.00"), D("15.00")),
        (DAY2, "corporate", 1, D("20.00"), D("13.00")),
    ]


def test_a_day_s_gold_reads_the_silver_orders_of_the_days_it_rebuilds(
    spark, day_by_day, day_two_scans
):
    """Day 2 changed only day 2's orders, so Gold finds and rebuilds its order days from day
    2's Silver files, not from every day the lakehouse holds: a coalesce of the release and
    ingest days, or an ``in (select ...)``, read them all, and a lakehouse's daily Gold grew
    with its history. customer_segments is the exception: Ann changed segment on day 2, so it
    rebuilds day 1 as well."""
    files = day_two_scans["day 2 files"]
    reads = {}  # dbt node: files each of its scans of Silver orders read
    for statement, scan, metrics in day_two_scans["scans"]:
        node = re.search(r'"node_id": "([^"]+)"', statement or "")
        if scan == "BatchScan lakehouse.silver.orders" and node:
            reads.setdefault(node[1], []).append(int(metrics["number of result data files"]))
    assert 1 <= files < day_two_scans["files"]  # so a scan of every day would show
    assert {
        "model.lakehouse.fct_orders",
        "model.lakehouse.agg_daily_sales",  # its days, from Silver orders
        "model.lakehouse.product_funnel",
        "test.lakehouse.fct_orders_has_every_silver_order",
    } <= {re.sub(r"\.[0-9a-f]{10}$", "", node) for node in reads}
    del reads["model.lakehouse.customer_segments"]
    assert {node: max(n) for node, n in reads.items() if max(n) > files} == {}


def test_the_history_has_one_row_per_version(spark, day_by_day):
    customers = spark.table("lakehouse.gold.dim_customers_history").where(f"customer_id = {ANN}")
    assert sorted(
        (r.version, r.customer_segment, str(r.valid_from), str(r.valid_to), r.is_current)
        for r in customers.collect()
    ) == [
        (1, "consumer", f"{DAY1} 08:00:00", f"{DAY2} 10:00:00", False),
        (2, "corporate", f"{DAY2} 10:00:00", "None", True),
    ]
    products = spark.table("lakehouse.gold.dim_products_history").where(f"product_id = {LAMP}")
    assert sorted((r.version, r.unit_cost, r.is_current) for r in products.collect()) == [
        (1, D("5.00"), False),
        (2, D("7.00"), True),
    ]
    # What BI tools join to is today's state.
    [now] = spark.table("lakehouse.gold.dim_customers").where(f"customer_id = {ANN}").collect()
    assert (now.customer_segment, now.lifetime_sales, now.lifetime_revenue) == (
        "corporate",
        3,
        D("80.00"),
    )


def test_rerunning_day_one_after_day_two_moves_nothing(spark, settings, day_by_day):
    run(partition_key=DAY1)  # the source no longer has day 1's versions
    assert gold(spark) == day_by_day
    bronze = spark.table("lakehouse.bronze.customers").where(f"customer_id = {ANN}")
    assert sorted((str(r._partition_date), r.segment) for r in bronze.collect()) == [
        (DAY1, "consumer"),  # kept by the rerun, not lost
        (DAY2, "corporate"),
    ]


def test_a_backfill_of_both_days_gives_the_day_by_day_gold(spark, day_by_day):
    run(tags=BOTH_DAYS)  # re-extracts day 1 once more: its version is kept, not doubled
    assert gold(spark) == day_by_day
    bronze = spark.table("lakehouse.bronze.customers").where(f"customer_id = {ANN}")
    assert bronze.count() == 2
