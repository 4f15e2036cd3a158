"""Materialise one hand-built day through Dagster and check the figures a user relies on.

Keys start at 1,000,000 and the day is 2026-03-10, so nothing here meets other tests' rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    materialize,
)
from pyspark.sql import functions as F

from lakehouse_assets.automation import LandingResource
from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold import gold_marts
from lakehouse_assets.resources import SparkResource, dbt_resource
from lakehouse_assets.silver import silver_assets
from lakehouse_assets.stream import assets as stream_assets
from lakehouse_assets.stream import (
    inventory_micro_batch_job,
    inventory_micro_batches,
    inventory_stream,
    low_stock_now,
)
from lakehouse_assets.stream.assets import low_stock_rule, refresh_and_alert
from spark_jobs import session, storage, stream
from spark_jobs.registry import SOURCES
from spark_jobs.settings import Settings
from spark_jobs.silver import runner
from spark_jobs.window import DayWindow
from tests.builders import (
    click,
    dbt_invocations,
    parse_messages,
    record_code_generation,
    reused_its_parse,
    s3_landing,
    spark_jobs_in,
    stock_event,
    webhook,
    write_landing,
    write_source_db,
)
from tools.proctree import TreeSampler

DAY = date(2026, 3, 10)
PARTITION = DAY.isoformat()
WINDOW = DayWindow.of_day(DAY)
ALICE, BOB = 1_000_001, 1_000_002
LAMP, BOOK, GLOBE = 1_000_010, 1_000_011, 1_000_012
LOG = logging.getLogger("tests.stream")
KETTLE = 1_000_013  # not in the source: a product that arrives while the stream runs
T = "2026-03-10 08:00:00"

ASSETS = [*bronze_assets, *silver_assets, gold_marts]
RESOURCES = {"spark": SparkResource(), "dbt": dbt_resource}


def hand_built_day(settings):
    write_source_db(
        settings,
        {
            "customers": [
                (ALICE, "Alice", "alice@example.com", "consumer", "north", T, T),
                (BOB, "Bob", "bob@example.com", "corporate", "south", T, T),
            ],
            "products": [
                (LAMP, "Lamp", "home", 19.99, 8.50, T),
                (BOOK, "Book", "books", 12.50, 5.25, T),
                (GLOBE, "Globe", "home", 30.00, 12.00, T),
            ],
            "orders": [
                (
                    5_000_001,
                    ALICE,
                    LAMP,
                    2,
                    39.98,
                    "placed",
                    "2026-03-10 09:00:00",
                    "2026-03-10 09:00:00",
                ),
                (
                    5_000_002,
                    ALICE,
                    BOOK,
                    1,
                    12.50,
                    "delivered",
                    "2026-03-10 09:10:00",
                    "2026-03-10 15:00:00",
                ),
                (
                    5_000_003,
                    BOB,
                    LAMP,
                    3,
                    59.97,
                    "shipped",
                    "2026-03-10 10:00:00",
                    "2026-03-10 18:00:00",
                ),
                (
                    5_000_004,
                    BOB,
                    BOOK,
                    1,
                    12.50,
                    "cancelled",
                    "2026-03-10 11:00:00",
                    "2026-03-10 12:00:00",
                ),
                (
                    5_000_005,
                    BOB,
                    BOOK,
                    1,
                    -12.50,
                    "placed",
                    "2026-03-10 11:30:00",
                    "2026-03-10 11:30:00",
                ),
                (
                    5_000_006,
                    ALICE,
                    LAMP,
                    1,
                    19.99,
                    "placed",
                    "2026-03-10 20:00:00",
                    "2026-03-10 20:00:00",
                ),
            ],
        },
    )
    write_landing(
        settings,
        "clickstream",
        DAY,
        [
            click("c1", "view", LAMP, "2026-03-10T08:55:00Z"),
            click("c2", "view", LAMP, "2026-03-10T08:56:00Z"),
            click("c3", "view", LAMP, "2026-03-10T09:50:00Z", user_id=2),
            click("c4", "add_to_cart", LAMP, "2026-03-10T08:58:00Z"),
            click("c5", "add_to_cart", LAMP, "2026-03-10T09:55:00Z", user_id=2),
            click("c6", "purchase", LAMP, "2026-03-10T09:00:00Z"),
            click("c7", "view", BOOK, "2026-03-10T09:05:00Z"),
            click("c7", "view", BOOK, "2026-03-10T09:05:00Z"),  # redelivered
            click("c9", "view", GLOBE, "2026-03-10T11:00:00Z"),  # in the cart, never ordered
            click("c10", "add_to_cart", GLOBE, "2026-03-10T11:01:00Z"),
            '{"event_id": "c8", "user_id": 1, "event_type": "vi',  # truncated
        ],
    )
    write_landing(
        settings,
        "inventory",
        DAY,
        [
            stock_event(1, LAMP, 10, 10, "2026-03-10T00:00:00Z"),
            stock_event(2, LAMP, -2, 8, "2026-03-10T09:00:00Z"),
            stock_event(3, LAMP, -3, 5, "2026-03-10T10:00:00Z"),
            stock_event(4, LAMP, -1, 4, "2026-03-10T20:00:00Z"),
            stock_event(5, BOOK, 100, 100, "2026-03-10T00:00:00Z"),
            stock_event(6, BOOK, -1, 99, "2026-03-10T09:10:00Z"),
        ],
    )


@pytest.fixture(scope="module")
def day_materialised(spark, settings):
    hand_built_day(settings)
    persisted = spark.sparkContext._jsc.getPersistentRDDs  # the run's session is this one
    before, at_gold = set(persisted().keys()), []
    hand_back = SparkResource.return_free_heap

    def when_dbt_starts(resource):  # what the layers still hold, then the project's own call
        at_gold.append(set(persisted().keys()) - before)
        hand_back(resource)

    codegen = []  # (what, Bronze rows, compiled, Spark's factory mode inside) per block
    with (
        pytest.MonkeyPatch.context() as patch,
        TreeSampler(os.getpid()) as tree,  # this process, its Spark JVM and what they start
    ):
        patch.setattr(SparkResource, "return_free_heap", when_dbt_starts)
        record_code_generation(patch, codegen)
        first = materialize(ASSETS, partition_key=PARTITION, resources=RESOURCES)
    assert first.success
    first.codegen = codegen  # pyright: ignore[reportAttributeAccessIssue]
    first.jvms_started = tree.jvms_started  # pyright: ignore[reportAttributeAccessIssue]
    first.held = [*at_gold, set(persisted().keys()) - before]  # pyright: ignore[reportAttributeAccessIssue]
    return first


def test_dbt_runs_on_the_runs_own_spark_and_starts_no_jvm(day_materialised):
    # Gold's step ran its models in the run's own session, served over Thrift from its
    # driver: no Spark of dbt's own, with its 15 s of start-up.
    steps = {e.step_key for e in day_materialised.all_events if e.is_step_success}
    assert "gold_marts" in steps
    assert day_materialised.jvms_started == set()


def test_a_tiny_day_runs_on_spark_s_interpreted_expressions_then_its_default_again(
    spark, settings, day_materialised
):
    # A day of a few dozen rows: compiling each query's generated code costs more than it
    # saves (about half a tiny day's JVM CPU was the JIT). Each Silver table counts what it
    # reads (its Bronze day, the Silver tables it joins); Gold, every Silver table's rows. dbt's
    # statements ran interpreted to the last (the mode seen at each model's output), and the
    # session runs on Spark's default again afterwards.
    calls = day_materialised.codegen
    silver = sorted((rows, c, m) for what, rows, c, m in calls if what == "silver")
    read = [runner.rows_read(spark, t, WINDOW) for t in runner.TABLES.values()]
    assert silver == sorted((n, False, "NO_CODEGEN") for n in read)
    held = sum(storage.total_rows(spark, f"lakehouse.silver.{s.silver}") for s in SOURCES)
    assert [(rows, c, m) for what, rows, c, m in calls if what == "gold"] == [
        (held, False, "NO_CODEGEN")
    ]
    at_outputs = [m for what, _, _, m in calls if what == "gold output"]
    assert len(at_outputs) == len(gold_marts.keys) and set(at_outputs) == {"NO_CODEGEN"}
    assert min(read) > 0 and held < settings.codegen_min_rows
    assert spark.conf.get(session.CODEGEN_FACTORY_MODE, None) is None
    assert spark.conf.get(session.CODEGEN_WHOLE_STAGE) == "true"


def test_compiled_from_sets_spark_s_mode_for_its_block_only(spark):
    def plan(df) -> str:
        return df._jdf.queryExecution().executedPlan().toString()

    query = spark.range(5).selectExpr("id * 2 AS x").where("x > 2")
    assert "*(" in plan(query)  # whole-stage generated code: Spark's default
    with session.compiled_from(spark, 10, 1000) as compiled:
        assert compiled is False
        assert spark.conf.get(session.CODEGEN_FACTORY_MODE) == "NO_CODEGEN"
        assert "*(" not in plan(spark.range(5).selectExpr("id * 2 AS x").where("x > 2"))
    assert spark.conf.get(session.CODEGEN_FACTORY_MODE, None) is None
    for rows, min_rows in ((1000, 1000), (10, 0)):  # large enough; or 0: always compiled
        with session.compiled_from(spark, rows, min_rows) as compiled:
            assert compiled is True
            assert spark.conf.get(session.CODEGEN_FACTORY_MODE, None) is None
    spark.conf.set(session.CODEGEN_WHOLE_STAGE, "false")  # a setting of the user's stays
    try:
        with pytest.raises(ZeroDivisionError), session.compiled_from(spark, 1, 2):
            raise ZeroDivisionError  # an error in the block: the modes are restored too
        assert spark.conf.get(session.CODEGEN_WHOLE_STAGE) == "false"
        assert spark.conf.get(session.CODEGEN_FACTORY_MODE, None) is None
    finally:
        spark.conf.unset(session.CODEGEN_WHOLE_STAGE)


def test_silver_writes_the_same_rows_compiled_as_interpreted(spark, day_materialised):
    # What the day wrote on interpreted expressions, written again on compiled code (as a
    # 1 M-event day runs): the same rows, quarantine and figures. (Only the run's own lineage
    # differs.) Orders and clickstream: the tables with the most expressions per row.
    def written(table: str) -> list:
        rows = spark.table(f"lakehouse.silver.{table}").drop("_run_id", "_quarantined_at")
        return sorted(map(str, rows.collect()))

    def figures(result) -> tuple:
        verdicts = [(v.name, v.passed, v.failing_rows) for v in result.verdicts]
        return (result.rows, result.quarantined, result.duplicates, result.rules, verdicts)

    outcome = {}
    for mode, min_rows in (("interpreted", 10**9), ("compiled", 0)):
        for table in ("orders", "clickstream"):
            result = runner.run_table(
                spark, runner.TABLES[table], WINDOW, f"codegen-{mode}", codegen_min_rows=min_rows
            )
            outcome[mode, table] = (figures(result), written(table), written(f"{table}_quarantine"))
    for table in ("orders", "clickstream"):
        assert outcome["interpreted", table] == outcome["compiled", table], table
    assert outcome["compiled", "clickstream"][0][1] > 0  # the day's dirt is in it


def test_dbt_lists_relations_without_a_statement_spark_refuses(settings, day_materialised):
    """dbt-spark asks `show table extended` first, which Spark refuses for Iceberg v2 tables:
    a failed statement per schema and run, logged by the run's JVM as an ERROR with a stack
    trace. The project's macro goes straight to dbt-spark's fallback (`show tables`)."""
    logs = [p.read_text() for p in (settings.home / "dbt" / "target").glob("*/dbt.log")]
    assert any("show tables in gold" in log for log in logs)  # dbt's statements are there
    assert not any("show table extended in" in log for log in logs)


def test_the_layers_leave_no_rows_held_in_the_driver(day_materialised):
    # Each table's load releases its checkpoints and caches when it ends: left to Spark's
    # cleaner, a 1 M-event day's were still held when dbt started, their heap committed.
    # Looked at when dbt starts (Gold's one call) and after the run.
    assert day_materialised.held == [set(), set()]


def test_a_silver_day_with_no_rows_released_runs_no_job_for_them(
    spark, day_materialised, monkeypatch
):
    # Rows released from hold belong to earlier days, which the writer adds to (a query
    # first: are there any?). The tally already counted the rows outside the window: a day
    # with none (most days) runs no job for them. Released rows: tests/test_end_to_end.py.
    from spark_jobs.silver import runner
    from spark_jobs.window import DayWindow

    added, insert_missing = [], storage.insert_missing
    monkeypatch.setattr(
        storage, "insert_missing", lambda *a, **k: added.append(a[1]) or insert_missing(*a, **k)
    )
    rows = spark.table("lakehouse.silver.clickstream").count()
    result = runner.run_table(
        spark, runner.TABLES["clickstream"], DayWindow.of_day(DAY), "rerun-without-released"
    )
    assert (result.released, added) == (0, [])
    assert spark.table("lakehouse.silver.clickstream").count() == rows == result.table_rows


def test_gold_is_one_dbt_invocation_per_run(settings, day_materialised):
    # Each `dbt build` pays dbt's start, parse and relation cache (about 15 s): the daily
    # marts and the dimensions share one, which builds every Gold table.
    invocations = dbt_invocations(settings, day_materialised.run_id)
    assert len(invocations) == 1, invocations
    built = {m.asset_key for m in day_materialised.get_asset_materialization_events()}
    assert {k for k in built if k.path[0] == "gold"} == set(gold_marts.keys)


def test_dbt_hears_a_long_statement_end_without_sleeping_between_polls(
    spark, settings, monkeypatch
):
    # dbt-spark polls a running statement and sleeps poll_interval (5 s by default) between
    # polls: a 5.1 s model took 10 s (customer_segments on a tiny day). The run's Thrift server
    # holds each poll until the statement ends or 5 s pass, so the embedded output polls with
    # no sleep of its own. A 6 s statement outlasts the first poll; it goes through dbt-spark's
    # own connection wrapper with the interval the profile gives it.
    import yaml
    from dbt.adapters.spark import connections
    from pyhive import hive

    from lakehouse_assets.resources.dbt import DBT_PROJECT_DIR
    from spark_jobs.session import serve_thrift

    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    embedded = profile["lakehouse"]["outputs"]["embedded"]
    interval = embedded.get("poll_interval", connections.SparkCredentials.poll_interval)
    sleeps: list[float] = []
    clock = connections.time
    monkeypatch.setattr(
        connections,
        "time",
        type("Clock", (), {"time": staticmethod(clock.time), "sleep": staticmethod(sleeps.append)}),
    )
    port = serve_thrift(spark, settings)
    handle = hive.connect(host="127.0.0.1", port=port, username="lakehouse-test")
    wrapper = connections.PyhiveConnectionWrapper(handle, poll_interval=interval).cursor()
    try:
        wrapper.execute("select reflect('java.lang.Thread', 'sleep', 6000L) from range(1)")
        assert len(wrapper.fetchall()) == 1
    finally:
        wrapper.close()
    # A poll came back with the statement still running (held for 5 s on the server), and
    # dbt went straight back to polling: no sleep, and no busy loop of polls either (one
    # every 5 s: fewer than 5 unless the 6 s statement took over 20 s).
    assert sleeps and set(sleeps) == {0} and len(sleeps) < 5, sleeps


def test_the_thrift_sessions_folders_stay_in_the_scratch_folder_not_tmp(spark, settings):
    """Each Thrift session (dbt's four threads, each run) gets a folder for resources it may
    add: by default /tmp/<session id>_resources, never removed (37 in /tmp after a morning
    of runs). It is in the home's scratch folder, where the next JVM's server removes it."""
    from pyhive import hive

    from spark_jobs.session import serve_thrift

    scratch = settings.scratch_dir / "hive"
    before = set(scratch.glob("*_resources"))
    port = serve_thrift(spark, settings)
    handles = [hive.connect(host="127.0.0.1", port=port, username="t") for _ in range(2)]
    try:
        new = set(scratch.glob("*_resources")) - before
        assert len(new) == 2  # each session's own, named by its id
        for folder in new:
            assert re.fullmatch(r"[0-9a-f-]{36}_resources", folder.name), folder.name
            assert not (Path(tempfile.gettempdir()) / folder.name).exists()
    finally:
        for handle in handles:
            handle.close()


SERVES_AND_CLOSES = """
import socket, time
from pyhive import hive
from spark_jobs.session import build_session, serve_thrift
from spark_jobs.settings import Settings

settings = Settings.from_env()
port = serve_thrift(build_session(settings, app_name="closed-connections"), settings)
hive.connect(host="127.0.0.1", port=port, username="t").close()  # as dbt closes each node's
socket.create_connection(("127.0.0.1", port)).close()  # a probe that only connects
time.sleep(3)  # the server's threads see the closes and log (at once: failed before)
print("served", port)
"""


def test_clients_closing_their_thrift_connections_leave_no_error_in_the_log(tmp_path):
    """dbt closes a Thrift connection per node; the Thrift library logged each close as an
    ERROR with a stack trace (about 60 in a successful day's run). None now, in a JVM of its
    own whose log (its stderr) the test reads."""
    import subprocess
    import sys

    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-c", SERVES_AND_CLOSES],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=180,
            check=False,
        )
    text = log.read_text()
    assert done.returncode == 0 and done.stdout.startswith("served"), text[-2000:]
    assert "Thrift error occurred" not in text
    assert [line for line in text.splitlines() if " ERROR " in line] == []


def rows(spark, table, where):
    spark.catalog.refreshTable(f"lakehouse.{table}")  # the stream commits through its own session
    return spark.table(f"lakehouse.{table}").where(where).collect()


def test_daily_sales_to_the_cent(spark, day_materialised):
    got = {
        (r.category, r.region, r.customer_segment): (
            r.sales,
            r.unique_customers,
            r.quantity,
            r.revenue,
            r.avg_sale_value,
            r.profit,
            r.margin_pct,
        )
        for r in rows(spark, "gold.agg_daily_sales", f"order_date = '{PARTITION}'")
    }
    D = Decimal
    assert got == {
        # sales 1 and 6: 39.98 + 19.99 revenue, 3 lamps at 8.50 cost
        ("home", "north", "consumer"): (2, 1, 3, D("59.97"), D("29.99"), D("34.47"), D("57.48")),
        ("books", "north", "consumer"): (1, 1, 1, D("12.50"), D("12.50"), D("7.25"), D("58.00")),
        ("home", "south", "corporate"): (1, 1, 3, D("59.97"), D("59.97"), D("34.47"), D("57.48")),
        # Bob's book: one order cancelled (not a sale), one with a negative amount (quarantined)
    }


def test_bad_rows_are_quarantined_and_accounted_for(spark, day_materialised):
    quarantined = rows(spark, "silver.orders_quarantine", f"_partition_date = '{PARTITION}'")
    assert [(r.record_key, r.rules) for r in quarantined] == [("5000005", ["amount_non_negative"])]
    clicks = rows(spark, "silver.clickstream_quarantine", f"_partition_date = '{PARTITION}'")
    assert [r.rules for r in clicks] == [["malformed_json"]]
    meta = day_materialised.asset_materializations_for_node("silver_clickstream")[0].metadata
    assert (meta["bronze_rows"].value, meta["silver_rows"].value) == (11, 9)
    assert (meta["quarantined"].value, meta["duplicates_removed"].value) == (1, 1)


def test_fct_orders_profit_and_customer_segments(spark, day_materialised):
    fct = {r.order_id: r for r in rows(spark, "gold.fct_orders", f"order_date = '{PARTITION}'")}
    assert sorted(fct) == [5_000_001, 5_000_002, 5_000_003, 5_000_004, 5_000_006]
    assert fct[5_000_003].profit == Decimal("34.47")  # 59.97 - 3 * 8.50
    assert fct[5_000_004].is_sale is False
    segments = {
        r.customer_segment: (r.segment_customers, r.active_customers, r.sales, r.revenue)
        for r in rows(spark, "gold.customer_segments", f"order_date = '{PARTITION}'")
    }
    assert segments["consumer"] == (1, 1, 3, Decimal("72.47"))
    assert segments["corporate"] == (1, 1, 1, Decimal("59.97"))


def test_product_funnel_counts(spark, day_materialised):
    funnel = {
        r.product_id: (r.views, r.add_to_carts, r.purchase_events, r.orders, r.units)
        for r in rows(spark, "gold.product_funnel", f"event_date = '{PARTITION}'")
    }
    assert funnel == {LAMP: (3, 2, 1, 3, 6), BOOK: (1, 0, 0, 2, 2), GLOBE: (1, 1, 0, 0, 0)}


def test_product_funnel_rates_count_a_day_that_did_not_convert(spark, day_materialised):
    rates = {
        r.product_id: (r.view_to_cart_rate, r.cart_to_order_rate)
        for r in rows(spark, "gold.product_funnel", f"event_date = '{PARTITION}'")
    }
    # The globe was put in a cart and not ordered: it converted at 0, not at "unknown".
    assert rates[GLOBE] == (Decimal("1.0000"), Decimal("0.0000"))
    assert rates[BOOK] == (Decimal("0.0000"), None)  # no add-to-cart: no rate to speak of
    assert rates[LAMP] == (Decimal("0.6667"), Decimal("1.5000"))


def test_low_stock_alerts_flag_the_lamp_only(spark, day_materialised):
    alerts = rows(spark, "gold.low_stock_alerts", f"as_of_date = '{PARTITION}'")
    # 4 lamps left, 6 sold today (its first day): 0.7 days of cover. 99 books at 1 a day: fine.
    assert [(r.product_id, r.stock_on_hand, r.units_per_day, r.days_of_cover) for r in alerts] == [
        (LAMP, 4, Decimal("6.00"), Decimal("0.7"))
    ]


def test_rematerialising_the_day_changes_nothing(spark, settings, day_materialised):
    lineage = {"_run_id", "_ingested_at", "_quarantined_at", "record"}
    tables = [
        "bronze.orders",
        "bronze.clickstream",
        "silver.orders",
        "silver.orders_quarantine",
        "silver.clickstream",
        "silver.inventory",
        "gold.fct_orders",
        "gold.agg_daily_sales",
        "gold.product_funnel",
        "gold.low_stock_alerts",
        "gold.dim_customers",
    ]

    def snapshot():
        out = {}
        for table in tables:
            df = spark.table(f"lakehouse.{table}")
            keep = [c for c in df.columns if c not in lineage]
            out[table] = sorted(tuple(r) for r in df.select(keep).collect())
        return out

    before = snapshot()
    again = materialize(ASSETS, partition_key=PARTITION, resources=RESOURCES)
    assert again.success
    after = snapshot()
    for table in tables:
        assert after[table] == before[table], table
    assert len(before["gold.fct_orders"]) >= 5

    # The second run's dbt reused the project the first one parsed (kept in the home).
    [invocation] = dbt_invocations(settings, again.run_id)
    assert reused_its_parse(invocation), parse_messages(invocation)

    # The second run took dbt's incremental path, where dbt-spark builds a model's new rows as
    # a temporary view (`<model>__dbt_tmp`) and leaves it, for the session's end to drop. Here
    # the session is the run's own, shared by dbt's connections, and Spark's Thrift server
    # reads every temporary view of it whenever a connection closes (dbt closes one after each
    # of its 60 nodes). Kept as SQL text, each view was parsed and analysed again at every
    # close: 0.6 s a close from a lakehouse's second day on (a tiny day's Gold took 27-34 s,
    # against 21-23 s on its first). Each keeps the plan analysed when it was made. (Spark's own
    # session catalog, as the Thrift server reads it: no public API tells the two apart.)
    left = [t.name for t in spark.catalog.listTables("default") if t.isTemporary]
    marts = ("fct_orders", "agg_daily_sales", "customer_segments", "product_funnel")
    assert {f"{m}__dbt_tmp" for m in (*marts, "low_stock_alerts")} <= set(left), left
    views: Any = spark._jsparkSession.sessionState().catalog()  # pyright: ignore[reportAttributeAccessIssue]
    as_text = [v for v in left if not views.getRawTempView(v).get().plan().isDefined()]
    assert as_text == [], as_text


# ------------------------------------------------------------------ the inventory stream
# The next day, 2026-03-11: inventory files land in three batches and the stream's runs keep
# low_stock_now current; velocity comes from the day above (6 lamps and 1 book sold).
NEXT_DAY = "2026-03-11"
STREAM_ASSETS = [inventory_stream, low_stock_now]


def stock_at(offset: int, product: int, change: int, level: int, clock: str) -> dict:
    return stock_event(offset, product, change, level, f"{NEXT_DAY}T{clock}Z")


BATCHES = [
    [stock_at(101, LAMP, 26, 30, "08:00:00"), stock_at(102, BOOK, -1, 98, "08:00:00")],
    [
        stock_at(103, LAMP, -15, 15, "10:00:00"),  # under 3 days of cover: alert
        stock_at(101, LAMP, 26, 30, "08:00:00"),  # redelivered by the sink
    ],
    [
        stock_at(104, LAMP, -3, 12, "11:00:00"),  # still low: no second alert
        stock_at(105, BOOK, -1, 97, "09:30:00"),  # late, inside the 60-minute watermark
        stock_at(106, BOOK, -1, 96, "08:30:00"),  # late, past it (09:00)
        stock_at(107, KETTLE, 5, 5, "11:00:00"),  # unknown product when first judged
    ],
]


def jsonl(events: list[dict]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def land(landing: Path, name: str, events: list[dict]) -> None:
    folder = landing / "inventory" / NEXT_DAY
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(jsonl(events))


def low_stock(spark) -> dict:
    return {
        r.product_id: (r.stock_level, r.units_per_day, r.days_of_cover, r.below_threshold)
        for r in rows(spark, "gold.low_stock_now", "warehouse_id = 'wh-1'")
    }


@pytest.fixture(scope="module")
def streamed(day_materialised, spark, settings, tmp_path_factory):
    landing = tmp_path_factory.mktemp("stream-landing")
    env = pytest.MonkeyPatch()
    env.setenv("LAKEHOUSE_LANDING", str(landing))
    stream.reset(spark, settings)  # this worker's lakehouse may have streamed before
    out = {"requests": [], "stock": [], "runs": [], "landing": landing}
    with webhook() as (url, posted), DagsterInstance.ephemeral() as instance:
        env.setenv("LAKEHOUSE_SLACK_WEBHOOK_URL", url)
        resources = {"landing": LandingResource.from_settings(Settings.from_env())}

        def tick(cursor):
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance
            ) as context:
                return inventory_micro_batches.evaluate_tick(context)

        def run(request):
            result = materialize(
                STREAM_ASSETS,
                resources={"spark": SparkResource()},
                instance=instance,
                tags=request.tags,
                raise_on_error=False,
            )
            out["runs"].append(result)
            return result

        real = storage.insert_missing

        def killed_after_commit(df, name, keys, **kwargs):
            real(df, name, keys, **kwargs)
            if name == stream.QUARANTINE_TABLE:  # events and quarantine both committed
                raise RuntimeError("killed after the commit")

        cursor = None
        for n, events in enumerate(BATCHES, 1):
            land(landing, f"part-{n}.jsonl", events)
            if n == 2:  # a run in flight holds the arrivals back: at most one at a time
                running = DagsterRun(
                    job_name=inventory_micro_batch_job.name, status=DagsterRunStatus.STARTED
                )
                instance.add_run(running)
                out["in_flight"] = tick(cursor)
                instance.delete_run(running.run_id)
            evaluation = tick(cursor)
            out["requests"].append(evaluation.run_requests)
            cursor = evaluation.cursor
            [request] = evaluation.run_requests
            if n == 3:
                # A micro-batch killed after its events and quarantine were committed, before
                # Spark recorded the batch as done (an exception stands in for the kill: the
                # state left behind is the same). The next run replays it, after the kettle
                # reached silver.products in between: the replay must decide as before.
                env.setattr(storage, "insert_missing", killed_after_commit)
                out["killed"] = run(request)
                env.setattr(storage, "insert_missing", real)
                add_product(spark, KETTLE, like=LAMP)
            assert run(request).success
            out["stock"].append(low_stock(spark))
        spark.sql(f"DELETE FROM lakehouse.silver.products WHERE product_id = {KETTLE}")
        out["again"] = tick(cursor)
        # A run of the job that failed (after its retries): retried after the back-off even
        # without new arrivals, not before.
        failed = DagsterRun(
            job_name=inventory_micro_batch_job.name, status=DagsterRunStatus.FAILURE
        )
        instance.add_run(failed)
        out["failed_within_backoff"] = tick(cursor)
        env.setattr(stream_assets, "RETRY_FAILED_AFTER_S", 0)
        out["failed_after_backoff"] = (failed.run_id, tick(cursor))
        out["posted"] = list(posted)
        # The end-of-day batch over the same files.
        batch = AssetSelection.assets(
            AssetKey(["bronze", "inventory_events"]), AssetKey(["silver", "inventory"])
        ).required_multi_asset_neighbors()
        assert materialize(
            ASSETS, selection=batch, partition_key=NEXT_DAY, resources=RESOURCES
        ).success
    env.undo()
    return out


def add_product(spark, product_id: int, like: int) -> None:
    """A product that reached silver.products since (a copy of another under a new id)."""
    products = spark.table("lakehouse.silver.products")
    row = products.where(f"product_id = {like}").withColumn(
        "product_id", F.lit(product_id).cast(products.schema["product_id"].dataType)
    )
    row.writeTo("lakehouse.silver.products").append()


def test_three_landings_make_three_micro_batch_runs_with_the_stock_after_each(streamed):
    assert [len(r) for r in streamed["requests"]] == [1, 1, 1]
    assert streamed["requests"][0][0].tags["dagster/max_retries"] == "2"  # replays are safe
    assert "in flight" in streamed["in_flight"].skip_message
    assert streamed["in_flight"].run_requests == []
    assert "no new inventory objects" in streamed["again"].skip_message
    assert "no new inventory objects" in streamed["failed_within_backoff"].skip_message
    failed_id, retried = streamed["failed_after_backoff"]
    [request] = retried.run_requests
    assert request.run_key.endswith(f":after-{failed_id[:8]}")
    # (stock, units per day, days of cover, below 3 days of cover)
    lamp = [s[LAMP] for s in streamed["stock"]]
    assert lamp == [
        (30, Decimal("6.00"), Decimal("5.0"), False),
        (15, Decimal("6.00"), Decimal("2.5"), True),
        (12, Decimal("6.00"), Decimal("2.0"), True),
    ]
    assert [s[BOOK][0] for s in streamed["stock"]] == [98, 98, 97]


def test_a_redelivered_offset_is_counted_once(spark, streamed):
    offsets = [r.offset for r in rows(spark, "silver.inventory_stream", "offset <= 107")]
    assert sorted(offsets) == [101, 102, 103, 104, 105]
    second = streamed["runs"][1].asset_materializations_for_node("inventory_stream")
    [meta] = [m.metadata for m in second if m.asset_key.path[-1] == "inventory_stream"]
    assert meta["redelivered"].value == 1
    assert meta["events_added"].value == 1


def test_late_events_inside_the_watermark_count_and_past_it_are_quarantined(spark, streamed):
    quarantined = rows(spark, "silver.inventory_stream_quarantine", "record_key LIKE '%:106'")
    assert [(r.record_key, r.rules) for r in quarantined] == [
        ("inventory-events:0:106", ["event_ts_within_watermark"])
    ]
    # The stream has no Bronze table: the quarantined record is the event's only copy.
    assert json.loads(json.loads(quarantined[0].record)["raw_line"])["offset"] == 106
    assert [s[BOOK][0] for s in streamed["stock"]][-1] == 97  # 09:30 counted


def test_a_micro_batch_killed_after_its_commit_is_replayed_once(spark, streamed):
    assert not streamed["killed"].success
    lamp = rows(spark, "silver.inventory_stream", f"product_id = {LAMP}")
    assert sorted(r.offset for r in lamp) == [101, 103, 104]  # each once
    assert streamed["stock"][-1][LAMP][0] == 12
    [batch] = rows(spark, "silver.inventory_stream_batches", "batch_id = 2")
    assert batch.first_run_id != batch.run_id  # planned by the killed run, done by the replay
    assert (batch.events_added, batch.late, batch.redelivered) == (2, 1, 0)


def test_a_replay_decides_as_the_killed_attempt_did_although_a_product_arrived(spark, streamed):
    # The killed attempt quarantined the kettle's event (no such product then) and committed
    # that; the kettle reached silver.products before the replay. Judged with the products
    # the attempt saw, the replay quarantines it again instead of also counting it.
    assert rows(spark, "silver.inventory_stream", f"product_id = {KETTLE}") == []
    [kettle] = rows(spark, "silver.inventory_stream_quarantine", "record_key LIKE '%:107'")
    assert "product_exists" in kettle.rules


def test_the_low_stock_alert_fires_once_per_product_and_day(spark, streamed):
    [alert] = streamed["posted"]
    assert alert["product_id"] == LAMP
    assert "Lamp" in alert["text"] and "2.5 days of cover" in alert["text"]
    notified = rows(spark, "gold.low_stock_notifications", "true")
    assert [(r.product_id, str(r.alert_date)) for r in notified] == [(LAMP, NEXT_DAY)]


def test_the_stream_and_the_days_batch_agree_on_final_stock(spark, streamed):
    batch = {
        (r.product_id, r.warehouse_id): r.stock_level
        for r in rows(spark, "silver.inventory", f"snapshot_date = '{NEXT_DAY}'")
    }
    stream = {(p, "wh-1"): s[0] for p, s in streamed["stock"][-1].items()}
    assert batch == stream == {(LAMP, "wh-1"): 12, (BOOK, "wh-1"): 97}


def step_error(result) -> str:
    """The failed steps' errors as the UI shows them: each with its causes."""
    messages = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message.strip())
            error = error.cause
    return "\n".join(messages)


def test_a_lost_checkpoint_stops_the_stream_with_one_line_and_changes_nothing(
    spark, streamed, settings
):
    # Without its checkpoint the stream would take every arrival again as micro-batch 0, with
    # no watermark: the 08:30 event quarantined as late would be counted.
    checkpoint = stream.StreamPaths.of(settings).checkpoint
    kept = checkpoint.with_name("checkpoint-kept")
    before = sorted(r.offset for r in rows(spark, "silver.inventory_stream", "true"))
    checkpoint.rename(kept)
    try:
        result = materialize(STREAM_ASSETS, resources={"spark": SparkResource()},
                             raise_on_error=False)  # fmt: skip
    finally:
        kept.rename(checkpoint)
    assert not result.success
    message = step_error(result)
    assert "checkpoint" in message and "is missing" in message
    assert "make stream-reset" in message
    assert sorted(r.offset for r in rows(spark, "silver.inventory_stream", "true")) == before


@pytest.fixture(scope="module")
def alerts_again(streamed, spark):
    """The lamp's alert forgotten (as on a new day), then posted through a webhook that
    fails, and then by two runs at once through a slow one."""
    forget = f"DELETE FROM lakehouse.gold.low_stock_notifications WHERE product_id = {LAMP}"
    env = pytest.MonkeyPatch()
    out = {}

    spark.sql(forget)
    with webhook(status=500) as (url, posted):
        env.setenv("LAKEHOUSE_SLACK_WEBHOOK_URL", url)
        out["failed"] = materialize([low_stock_now], resources={"spark": SparkResource()},
                                    raise_on_error=False)  # fmt: skip
        out["failed_posts"] = list(posted)
        out["recorded_after_failure"] = rows(spark, "gold.low_stock_notifications", "true")
    # Two at once, as on a catalog that lets runs overlap (the embedded one's lock makes
    # Dagster runs here take turns, so the step's code is called directly). Slow enough
    # that, without the stream's lock, the second finds the lamp not yet recorded while the
    # first's post is under way, and posts it again (seen before the lock).
    with webhook(delay_s=5.0) as (url, posted):
        env.setenv("LAKEHOUSE_SLACK_WEBHOOK_URL", url)
        settings = Settings.from_env()

        def at_once(n: int):
            return refresh_and_alert(spark, settings, low_stock_rule(), f"at-once-{n}", LOG)

        with ThreadPoolExecutor(2) as pool:
            out["together"] = list(pool.map(at_once, range(2)))
        out["posted"] = list(posted)
    env.undo()
    return out


def test_a_failed_alert_post_fails_the_run_and_is_not_recorded(spark, alerts_again):
    assert not alerts_again["failed"].success
    assert "1 low-stock alerts not posted" in step_error(alerts_again["failed"])
    assert len(alerts_again["failed_posts"]) == 1  # tried, answered 500
    assert alerts_again["recorded_after_failure"] == []


def test_two_alert_runs_at_once_post_once(spark, alerts_again):
    sent = sorted(len(a.sent) for a in alerts_again["together"])
    assert sent == [0, 1] and all(a.failed == [] for a in alerts_again["together"])
    assert [p["product_id"] for p in alerts_again["posted"]] == [LAMP]
    notified = rows(spark, "gold.low_stock_notifications", "true")
    assert [r.product_id for r in notified] == [LAMP]


def test_the_arrivals_log_compacts_itself_and_the_stream_resumes(spark, streamed, settings):
    paths = stream.StreamPaths.of(settings)
    assert stream.compact_arrivals(spark, paths, keep=1)
    snapshots = spark.table(f"{stream.ARRIVALS_TABLE}.snapshots").count()
    files = spark.table(f"{stream.ARRIVALS_TABLE}.files").count()
    assert (snapshots, files) == (1, 1)  # three runs' appends, packed; the rest expired
    [generation] = paths.checkpoint.glob("from-*")  # the stream goes on in a new checkpoint
    assert generation.name.startswith("from-000000000003-")  # after micro-batches 0, 1 and 2
    env = pytest.MonkeyPatch()
    env.setenv("LAKEHOUSE_LANDING", str(streamed["landing"]))
    land(streamed["landing"], "part-4.jsonl", [stock_at(108, BOOK, -2, 95, "12:00:00")])
    result = materialize(STREAM_ASSETS, resources={"spark": SparkResource()})
    env.undo()
    assert result.success
    added = rows(spark, "silver.inventory_stream", "offset = 108")
    assert [(r.product_id, r.stock_level, r._batch_id) for r in added] == [(BOOK, 95, 3)]
    [batch] = rows(spark, "silver.inventory_stream_batches", "batch_id = 3")
    assert (batch.objects, batch.lines) == (1, 1)  # only the new file: nothing read twice


@pytest.fixture(scope="module")
def streamed_from_s3(streamed, spark, settings, s3_server):
    """The same three files in an S3 bucket, taken by one run: one micro-batch."""
    env = pytest.MonkeyPatch()
    s3 = s3_landing(env, s3_server, "stream-bucket", "feeds")
    env.delenv("LAKEHOUSE_SLACK_WEBHOOK_URL", raising=False)  # never a developer's real Slack
    for n, events in enumerate(BATCHES, 1):
        key = f"feeds/inventory/{NEXT_DAY}/part-{n}.jsonl"
        s3.put_object(Bucket="stream-bucket", Key=key, Body=jsonl(events).encode())
    stream.reset(spark, settings)
    result = materialize(STREAM_ASSETS, resources={"spark": SparkResource()})
    env.undo()
    return result


def test_the_stream_reads_an_s3_landing_zone_like_a_folder(spark, streamed_from_s3):
    assert streamed_from_s3.success
    events = rows(spark, "silver.inventory_stream", "true")
    # One micro-batch: no earlier event time, hence no watermark yet; 101 arrived twice.
    assert sorted(r.offset for r in events) == [101, 102, 103, 104, 105, 106]
    assert {r._source_file.rsplit("/", 1)[0] for r in events} == {
        f"s3://stream-bucket/feeds/inventory/{NEXT_DAY}"
    }
    assert {p: s[0] for p, s in low_stock(spark).items()} == {LAMP: 12, BOOK: 97}


def test_bronze_counts_its_rows_per_day_from_the_commit_and_falls_back_to_counting(
    spark, monkeypatch
):
    """write_bronze reads a day once: its rows per day are those of the files its commit
    added (from the table's metadata: no Spark job beyond the write's own). Where the commit
    is not this write's alone, they are counted instead."""
    from uuid import uuid4

    from spark_jobs.bronze import PARTITION_COLUMN, write_bronze
    from spark_jobs.window import DayWindow

    table = f"count_test_{uuid4().hex[:8]}"
    name = storage.table_name("bronze", table)
    window = DayWindow(date(2026, 5, 1), date(2026, 5, 3))
    schema = f"{PARTITION_COLUMN} date, v string"
    day1, day2, later = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 9)
    rows = spark.createDataFrame([(day1, "a"), (day1, "b"), (day2, "c")], schema)
    counting = storage.rows_per_day

    def jobs_of(action) -> int:
        group = f"count-test-{uuid4().hex}"
        spark.sparkContext.setJobGroup(group, "jobs counted by the test")
        try:
            action()
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        return len(spark_jobs_in(spark, group))

    try:
        with monkeypatch.context() as patched:  # the rows are not read a second time
            patched.setattr(storage, "rows_per_day", lambda *_: pytest.fail("rows read again"))
            first = write_bronze(rows, table, window)
            assert first.rows_per_day == {"2026-05-01": 2, "2026-05-02": 1}
            results = []
            written = jobs_of(lambda: results.append(write_bronze(rows, table, window)))
            assert results[0].rows_per_day == first.rows_per_day
            assert (first.table_rows, results[0].table_rows) == (3, 3)  # the commit's total
            assert results[0].snapshot_id == storage.current_snapshot(spark, name)
            # As many Spark jobs as the same overwrite alone (before: 4 more, 2 a write).
            condition = storage.window_condition(PARTITION_COLUMN, window)
            assert written == jobs_of(lambda: rows.writeTo(name).overwrite(condition))
            # A row outside the window: its day is the day of the file it went to.
            stray = rows.unionByName(spark.createDataFrame([(later, "z")], schema))
            assert write_bronze(stray, table, window).rows_per_day == {
                "2026-05-01": 2,
                "2026-05-02": 1,
                "2026-05-09": 1,
            }
            empty = write_bronze(rows.where("false"), table, window)  # the window emptied
            assert (empty.rows, empty.rows_per_day, empty.table_rows) == (0, {}, 1)
        assert storage.rows_per_day is counting
        # Another commit between the write and the count: not this write's rows alone.
        replace = storage.replace_window

        def and_another_commit(df, *args):
            replace(df, *args)
            spark.createDataFrame([(later, "y")], schema).writeTo(name).append()

        monkeypatch.setattr(storage, "replace_window", and_another_commit)
        counted = []
        monkeypatch.setattr(storage, "rows_per_day", lambda *a: counted.append(1) or counting(*a))
        assert write_bronze(rows, table, window).rows_per_day == first.rows_per_day
        assert counted == [1]
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")


def test_rows_per_day_held_come_from_the_files_without_a_job_and_match_a_count(spark):
    """Bronze's earlier days for Silver's row-count band: the record counts of the files a
    scan plans, exact (as a query counts them) and without a Spark job; counted by a query
    where files cannot tell (rows removed by delete files, a table not partitioned by the
    column)."""
    from uuid import uuid4

    name = storage.table_name("bronze", f"per_day_test_{uuid4().hex[:8]}")
    day = date(2026, 5, 2)
    days = [day + timedelta(days=d) for d in range(4)]
    assert storage.rows_per_day_held(spark, name, "d") == {}  # no table
    rows = [(d, f"{d}-{i}") for n, d in enumerate(days) for i in range(n + 1)]  # 1..4 a day
    spark.createDataFrame(rows, "d date, v string").writeTo(name).partitionedBy(F.col("d")).create()
    try:
        spark.createDataFrame([(days[1], "again")], "d date, v string").writeTo(name).append()
        group = f"per-day-test-{uuid4().hex}"
        spark.sparkContext.setJobGroup(group, "jobs counted by the test")
        answers = [
            storage.rows_per_day_held(spark, name, "d"),
            storage.rows_per_day_held(spark, name, "d", days[1], days[3]),
            storage.rows_per_day_held(spark, name, "d", before=day),
        ]
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        assert spark_jobs_in(spark, group) == []
        counted = storage.rows_per_day(spark.table(name), "d")
        assert answers == [
            counted,
            {"2026-05-03": 3, "2026-05-04": 3},  # two files of the 3rd, the 5th left out
            {},
        ]
        assert counted == {"2026-05-02": 1, "2026-05-03": 3, "2026-05-04": 3, "2026-05-05": 4}
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('write.delete.mode'='merge-on-read')")
        # One of a file's two rows: a position delete (the files still say 3 on the 3rd).
        spark.sql(f"DELETE FROM {name} WHERE v = '2026-05-03-0'")
        assert storage.rows_per_day_held(spark, name, "d", days[1], days[3]) == {
            "2026-05-03": 2,
            "2026-05-04": 3,
        }
        flat = storage.table_name("bronze", f"per_day_test_{uuid4().hex[:8]}")
        spark.createDataFrame(rows, "d date, v string").writeTo(flat).create()
        try:
            assert storage.rows_per_day_held(spark, flat, "d", after=days[2]) == {
                "2026-05-04": 3,
                "2026-05-05": 4,
            }
        finally:
            spark.sql(f"DROP TABLE IF EXISTS {flat} PURGE")
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")


def test_silver_row_count_band_reads_bronzes_history_without_a_spark_job(spark):
    """The band compares a day's Bronze rows with the days before it: read from Bronze's
    file metadata, not by a query (a job a table a run, a few hundred ms on a tiny day)."""
    from uuid import uuid4

    from spark_jobs.silver import checks
    from spark_jobs.window import DayWindow

    bronze = storage.table_name("bronze", f"band_test_{uuid4().hex[:8]}")
    day = date(2026, 5, 5)
    history = [(day - timedelta(days=d), f"{d}-{i}") for d in (1, 2) for i in range(10 * d)]
    spark.createDataFrame(history, "_partition_date date, v string").writeTo(bronze).partitionedBy(
        F.col("_partition_date")
    ).create()
    try:
        inputs = checks.CheckInputs(
            spark,
            DayWindow.of_day(day),
            "unused",
            bronze,
            "_partition_date",
            None,
            [],
            split=None,  # pyright: ignore[reportArgumentType] - the band does not read it
            bronze_per_day={day.isoformat(): 45},
        )
        group = f"band-test-{uuid4().hex}"
        spark.sparkContext.setJobGroup(group, "jobs counted by the test")
        verdict = checks.row_count_band(low=0.5, high=2.0).evaluate(inputs)
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        assert spark_jobs_in(spark, group) == []
        # 45 rows against the mean of 10 and 20: 3.0, outside the band.
        assert verdict.detail["ratio_to_recent_mean"] == {"2026-05-05": 3.0}
        assert not verdict.passed and verdict.failing_rows == 45
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {bronze} PURGE")


def test_holds_rows_tells_from_the_files_whether_a_table_has_rows_in_a_range(spark):
    """What Bronze asks before an extraction (an earlier day? this window already?),
    answered by planning a scan, without a Spark job."""
    from uuid import uuid4

    name = storage.table_name("bronze", f"holds_test_{uuid4().hex[:8]}")
    day = date(2026, 5, 2)
    assert not storage.holds_rows(spark, name, "d")  # no table
    spark.createDataFrame([(day, "a")], "d date, v string").writeTo(name).partitionedBy(
        F.col("d")
    ).create()
    try:
        group = f"holds-test-{uuid4().hex}"
        spark.sparkContext.setJobGroup(group, "jobs counted by the test")
        answers = [
            storage.holds_rows(spark, name, "d"),
            storage.holds_rows(spark, name, "d", before=day),
            storage.holds_rows(spark, name, "d", before=day + timedelta(days=1)),
            storage.holds_rows(spark, name, "d", after=day + timedelta(days=1)),
            storage.holds_rows(spark, name, "d", day, day + timedelta(days=1)),
            storage.holds_rows(spark, name, "d", day - timedelta(days=3), day),
        ]
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        assert answers == [True, False, True, False, True, False]
        assert spark_jobs_in(spark, group) == []
        spark.sql(f"DELETE FROM {name} WHERE d = DATE'{day}'")  # a whole day: no file left
        assert not storage.holds_rows(spark, name, "d")
        # Where the files cannot tell (rows removed by delete files; a table not partitioned
        # by the column), a query does.
        more = [(day, "a"), (day, "b"), (day + timedelta(days=1), "c")]
        spark.createDataFrame(more, "d date, v string").writeTo(name).append()
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('write.delete.mode'='merge-on-read')")
        spark.sql(f"DELETE FROM {name} WHERE v IN ('a', 'b')")  # position deletes, day's file
        assert not storage.holds_rows(spark, name, "d", day, day + timedelta(days=1))
        assert storage.holds_rows(spark, name, "d", after=day + timedelta(days=1))
        flat = storage.table_name("bronze", f"holds_test_{uuid4().hex[:8]}")
        spark.createDataFrame(more, "d date, v string").writeTo(flat).create()
        try:
            assert storage.holds_rows(spark, flat, "d", before=day + timedelta(days=1))
            assert not storage.holds_rows(spark, flat, "d", before=day)
        finally:
            spark.sql(f"DROP TABLE IF EXISTS {flat} PURGE")
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")


def test_a_layer_job_runs_only_the_tables_named_on_its_command_line(
    spark, settings, capsys, monkeypatch, tmp_path
):
    """`spark-submit spark_jobs/cli.py <layer> --table T`, one task of the DAG this project
    replaces (the benchmark's seed shape runs each table so): that table alone, in either
    layer, and a name the layer does not have fails before Spark is asked anything."""
    from spark_jobs import cli
    from tests.builders import click, write_landing, write_source_db

    day = date(2031, 3, 14)  # no other test lands or extracts this day
    t = "2031-03-14 08:00:00"
    source = f"jdbc:sqlite:{tmp_path / 'source.db'}"
    monkeypatch.setenv("LAKEHOUSE_SOURCE_URL", source)  # the job reads its settings itself
    write_source_db(
        settings.with_overrides(source_url=source),
        {
            "customers": [(4_200_001, "Ann", "ann@example.com", "consumer", "east", t, t)],
            "products": [(4_200_010, "Pan", "home", 20.00, 9.00, t)],
        },
    )
    write_landing(settings, "clickstream", day, [click("e-4200", "view", 4_200_010, t), "{oops"])

    def run(layer: str, table: str) -> dict[str, str]:
        cli.main([layer, "--date", day.isoformat(), "--table", table])
        lines = capsys.readouterr().out.splitlines()
        return {k: v.split()[0] for k, v in (ln.split(": ") for ln in lines if ": " in ln)}

    assert run("bronze", "products") == {"lakehouse.bronze.products": "1"}  # customers not read
    assert run("silver", "products") == {"lakehouse.silver.products": "1"}
    assert run("bronze", "clickstream") == {"lakehouse.bronze.clickstream": "2"}  # bad line kept
    assert run("silver", "clickstream") == {"lakehouse.silver.clickstream": "1"}
    with pytest.raises(SystemExit):
        cli.main(["silver", "--date", day.isoformat(), "--table", "inventory_events"])  # Bronze's
    assert "invalid choice: 'inventory_events'" in capsys.readouterr().err
