"""The code location loads, and its graph is the one the README describes."""

from pathlib import Path

import pytest
from dagster import AssetKey, BackfillPolicy, DailyPartitionsDefinition, Definitions

from lakehouse_assets.automation import ARRIVAL_JOBS
from lakehouse_assets.definitions import defs

GRAPH = defs.resolve_asset_graph()

BRONZE = {"customers", "products", "orders", "clickstream", "inventory_events"}
SILVER = {"customers", "products", "orders", "clickstream", "inventory"}
GOLD_DAILY = {
    "fct_orders",
    "agg_daily_sales",
    "customer_segments",
    "product_funnel",
    "low_stock_alerts",
}
GOLD_DIMS = {"dim_customers", "dim_products", "dim_customers_history", "dim_products_history"}
HISTORY = {"customers", "products"}  # dimensions whose Silver step also keeps every version
GOLD_QUALITY = {"data_quality_daily"}
# The inventory stream's micro-batches: current state, not days.
SILVER_STREAM = {
    "inventory_stream",
    "inventory_stream_quarantine",
    "inventory_stream_arrivals",
    "inventory_stream_batches",
}
GOLD_STREAM = {"low_stock_now", "low_stock_notifications"}

# Spark and Dagster in this process only: no servers, no dbt (make test-fast).
pytestmark = pytest.mark.fast


def keys(layer: str) -> set[str]:
    return {k.path[1] for k in GRAPH.get_all_asset_keys() if k.path[0] == layer}


SOURCES = {"customers", "products", "orders", "clickstream_landing", "inventory_landing"}


def test_every_table_is_an_asset_keyed_layer_table():
    assert keys("source") == SOURCES
    assert keys("bronze") == BRONZE
    assert keys("silver") == (
        SILVER
        | {f"{t}_quarantine" for t in SILVER}
        | {f"{t}_history" for t in HISTORY}
        | SILVER_STREAM
    )
    assert keys("gold") == GOLD_DAILY | GOLD_DIMS | GOLD_QUALITY | GOLD_STREAM
    assert all(len(k.path) == 2 for k in GRAPH.get_all_asset_keys())


def test_the_code_location_loads_as_the_webserver_and_cli_load_it():
    # Names the UI needs unique (jobs, ops) are checked only when the repository is built.
    Definitions.validate_loadable(defs)  # raises on a clash
    jobs = {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert {"daily_lakehouse", "inventory_micro_batch", "quality_report"} <= jobs


def test_the_main_job_scores_its_days_after_every_check_it_runs():
    # The quality report is a step of the main run (and of each arrival run), not a second
    # run: a second run loads the code location again (about 5 s a day). It reads the check
    # results of Silver and of dbt's tests, so it comes after both.
    report = AssetKey(["gold", "data_quality_daily"])
    for job in ("daily_lakehouse", *[j.name for j in ARRIVAL_JOBS.values()]):
        assert report in defs.resolve_job_def(job).asset_layer.selected_asset_keys, job
    upstream = GRAPH.get(report).parent_keys
    assert {AssetKey(["silver", f"{t}_quarantine"]) for t in SILVER} <= upstream
    assert {AssetKey(["gold", t]) for t in GOLD_DAILY | GOLD_DIMS} <= upstream


def test_group_is_the_layer_but_the_streams_and_every_asset_has_a_description():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        stream = key.path[1] in SILVER_STREAM | GOLD_STREAM
        assert node.group_name == ("stream" if stream else key.path[0]), key
        assert node.tags["layer"] == key.path[0], key
        assert node.description and node.description.strip(), key


def test_daily_data_is_daily_partitioned_with_single_run_backfills():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        # dimensions, the stream, sources, and the weekly housekeeping of every table
        current_state = GOLD_DIMS | SILVER_STREAM | GOLD_STREAM
        if (
            key.path[1] in current_state
            or not node.is_materializable
            or key.path[0] == "maintenance"
        ):
            assert node.partitions_def is None
            continue
        assert isinstance(node.partitions_def, DailyPartitionsDefinition), key
        assert node.backfill_policy == BackfillPolicy.single_run(), key


def test_silver_feeds_the_dbt_models():
    parents = lambda model: GRAPH.get(AssetKey(["gold", model])).parent_keys  # noqa: E731
    assert AssetKey(["silver", "orders"]) in parents("fct_orders")
    assert AssetKey(["silver", "customers"]) in parents("fct_orders")
    assert AssetKey(["silver", "products"]) in parents("fct_orders")
    # Attributes as of the order's time: the versions, written by the same Silver steps.
    assert AssetKey(["silver", "customers_history"]) in parents("fct_orders")
    assert AssetKey(["silver", "products_history"]) in parents("dim_products_history")
    assert AssetKey(["silver", "clickstream"]) in parents("product_funnel")
    assert AssetKey(["silver", "inventory"]) in parents("low_stock_alerts")
    assert AssetKey(["gold", "fct_orders"]) in parents("agg_daily_sales")
    assert AssetKey(["bronze", "orders"]) in GRAPH.get(AssetKey(["silver", "orders"])).parent_keys


def test_dbt_tests_are_asset_checks():
    checked = {k.asset_key.path[1] for k in GRAPH.asset_check_keys}
    assert {"fct_orders", "agg_daily_sales", "dim_customers"} <= checked


def test_main_job_runs_in_one_process():
    job = defs.resolve_job_def("daily_lakehouse")
    assert job.executor_def.name == "in_process"
    assert {k.path[0] for k in job.asset_layer.executable_asset_keys} == {
        "bronze",
        "silver",
        "gold",
    }


def test_gold_has_freshness_checks_and_the_day_is_scheduled_at_six():
    fresh = {k.asset_key.path[1] for k in GRAPH.asset_check_keys if "freshness" in k.name}
    assert fresh >= GOLD_DAILY | GOLD_DIMS
    schedule = defs.resolve_schedule_def("daily_lakehouse_at_6")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 6 * * *", "daily_lakehouse")
    sensors = {s.name for s in defs.sensors}
    assert {"clickstream_landed", "inventory_landed", "slack_on_run_failure"} <= sensors


def test_every_schedule_and_sensor_but_the_streams_is_on_by_default_as_the_readme_says():
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    assert {s.default_status for s in defs.schedules} == {DefaultScheduleStatus.RUNNING}
    assert len(defs.schedules) == 2  # the daily run, the weekly housekeeping
    off = [s.name for s in defs.sensors if s.default_status != DefaultSensorStatus.RUNNING]
    assert off == ["inventory_micro_batches"]  # opt-in: a run per inventory arrival
    assert {
        "quality_after_success",
        "quality_after_failure",
        "quality_after_canceled",
        "gold_freshness",
        "prometheus_metrics",
    } <= {  # fmt: skip
        s.name for s in defs.sensors
    }


def test_lineage_starts_at_the_sources_as_external_assets():
    for name in SOURCES:
        node = GRAPH.get(AssetKey(["source", name]))
        assert not node.is_materializable, name  # Dagster reads them, never writes them
    database = GRAPH.get(AssetKey(["source", "orders"]))
    assert database.kinds == {"sqlite"}  # the embedded default; postgres by configuration
    assert AssetKey(["source", "orders"]) in GRAPH.get(AssetKey(["bronze", "orders"])).parent_keys
    landing = AssetKey(["source", "clickstream_landing"])
    assert landing in GRAPH.get(AssetKey(["bronze", "clickstream"])).parent_keys


def test_every_asset_has_an_owner_a_layer_tag_and_a_link_to_its_code():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        assert "team:data-platform" in node.owners, key
        assert node.tags.get("layer") == key.path[0], key
        if node.is_materializable:
            references = node.metadata["dagster/code_references"].code_references
            assert all(Path(ref.file_path).is_file() for ref in references), key
            assert references, key
    silver = GRAPH.get(AssetKey(["silver", "orders"])).metadata["dagster/code_references"]
    assert any(r.file_path.endswith("spark_jobs/silver/orders.py") for r in silver.code_references)
    fct = GRAPH.get(AssetKey(["gold", "fct_orders"])).metadata["dagster/code_references"]
    assert any(r.file_path.endswith("fct_orders.sql") for r in fct.code_references)


def test_dbt_descriptions_are_the_model_docs_not_their_sql():
    for name in GOLD_DAILY | GOLD_DIMS:
        description = GRAPH.get(AssetKey(["gold", name])).description
        assert "Raw SQL" not in description and "{{" not in description, name


def test_gold_tables_warn_when_their_columns_change():
    changed = {
        k.asset_key.path[1] for k in GRAPH.asset_check_keys if k.name == "column_schema_change"
    }
    assert changed == GOLD_DAILY | GOLD_DIMS


def test_every_dbt_test_says_what_it_asserts_in_the_check_list():
    dbt_checks = [
        GRAPH.get_check_spec(key)
        for key in GRAPH.asset_check_keys
        if key.asset_key.path[0] == "gold"
        and "dagster_dbt/unique_id" in str(GRAPH.get_check_spec(key).metadata)
    ]
    assert len(dbt_checks) > 20
    for spec in dbt_checks:
        assert spec.description.startswith(("[dbt fail] ", "[dbt warn] ")), spec.name
    by_name = {spec.name: spec.description for spec in dbt_checks}
    assert by_name["unique_fct_orders_order_id"] == "[dbt fail] one row per order_id"


def test_a_dependency_read_only_in_a_window_is_in_the_graph():
    # The window reaches dbt at run time only (so dbt's parse state stays the same): what a
    # model reads only for a window is named in a `-- depends_on:` line, or the graph lacks it.
    # (customer_segments names silver.customers so too, for dbt; the graph has it anyway,
    # through stg_customers.)
    upstream = GRAPH.get(AssetKey(["gold", "low_stock_alerts"])).parent_keys
    assert AssetKey(["silver", "orders"]) in upstream
