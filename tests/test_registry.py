"""The registry of sources is the one list the code location is built from: adding a source is
a registry entry and its Silver module, and everything else follows."""

from __future__ import annotations

import sys
import textwrap

import pytest
from dagster import AssetKey

from lakehouse_assets.definitions import build_definitions
from spark_jobs import registry, silver
from spark_jobs.registry import SOURCES, Source

# What a user writes for a new table: its Silver module (types, rules, transform, spec).
SUPPLIERS_MODULE = """
    from spark_jobs import quality as q
    from spark_jobs.silver import checks
    from spark_jobs.silver.checks import TableRules
    from spark_jobs.silver.common import SilverTable, current_state, merge, typed

    TYPES = {"supplier_id": "long", "name": "string", "updated_at": "timestamp"}
    QUALITY = TableRules(
        rows=(q.not_null("supplier_id", action="fail"), q.not_null("name")),
        checks=(
            checks.schema({"supplier_id": "any", "name": "any"}),
            checks.reconciles(),
            checks.unique(["supplier_id"]),
        ),
    )
    TABLE = SilverTable(
        QUALITY,
        lambda bronze, batch: current_state(
            typed(bronze, TYPES), "supplier_id", QUALITY, list(TYPES), batch.run_id
        ),
        merge("supplier_id"),
        batch_day="_ingest_date",
    )
"""
# A landing feed that reads another Silver table; its rules can be any table's.
REVIEWS_MODULE = """
    from dataclasses import replace

    from spark_jobs.silver.clickstream import TABLE as CLICKS

    TABLE = replace(CLICKS, earlier_days=0)
"""

# Spark and Dagster in this process only: no servers, no dbt (make test-fast).
pytestmark = pytest.mark.fast


@pytest.fixture
def extended(tmp_path, monkeypatch):
    """The registry with one more database table and one more landing feed."""
    for name, text in (("suppliers_silver", SUPPLIERS_MODULE), ("reviews_silver", REVIEWS_MODULE)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield (
        *SOURCES,
        Source(
            "suppliers",
            "database",
            bronze="suppliers",
            silver="suppliers",
            key="supplier_id",
            reads=("products",),
            bronze_description="Suppliers changed that day.",
            silver_description="Every supplier, current state.",
            module="suppliers_silver",
        ),
        Source(
            "reviews",
            "landing",
            bronze="reviews",
            silver="reviews",
            reads=("products", "suppliers"),
            bronze_description="Raw review lines.",
            silver_description="Reviews, one per event.",
            module="reviews_silver",
        ),
    )
    for name in ("suppliers_silver", "reviews_silver"):
        sys.modules.pop(name, None)


def test_a_source_added_to_the_registry_gets_assets_deps_checks_sensor_and_job(extended):
    defs = build_definitions(extended)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    for path in (
        ["source", "suppliers"],
        ["bronze", "suppliers"],
        ["silver", "suppliers"],
        ["silver", "suppliers_quarantine"],
        ["source", "reviews_landing"],
        ["bronze", "reviews"],
        ["silver", "reviews"],
    ):
        assert AssetKey(path) in keys, path
    # Its asset's dependencies are exactly its Bronze table and the Silver tables it reads.
    assert graph.get(AssetKey(["silver", "suppliers"])).parent_keys == {
        AssetKey(["bronze", "suppliers"]),
        AssetKey(["silver", "products"]),
    }
    assert graph.get(AssetKey(["silver", "reviews"])).parent_keys == {
        AssetKey(["bronze", "reviews"]),
        AssetKey(["silver", "products"]),
        AssetKey(["silver", "suppliers"]),
    }
    assert graph.get(AssetKey(["bronze", "suppliers"])).parent_keys == {
        AssetKey(["source", "suppliers"])
    }
    # Every rule of its module is an asset check, blocking where its action blocks.
    suppliers = AssetKey(["silver", "suppliers"])
    checks = {
        key.name: graph.get_check_spec(key).blocking
        for key in graph.asset_check_keys
        if key.asset_key == suppliers
    }
    assert checks == {
        "supplier_id_not_null": True,
        "name_not_null": True,
        "schema": True,
        "bronze_reconciles": True,
        "unique_supplier_id": True,
    }
    # The feed has its own arrival sensor and job; the main job takes in the new tables.
    sensor = next(s for s in defs.sensors or [] if s.name == "reviews_landed")
    assert sensor.job_name == "reviews_arrival"
    arrival = defs.resolve_job_def("reviews_arrival").asset_layer.asset_graph
    assert AssetKey(["silver", "reviews"]) in arrival.get_all_asset_keys()
    main = defs.resolve_job_def("daily_lakehouse").asset_layer.asset_graph
    assert AssetKey(["silver", "suppliers"]) in main.get_all_asset_keys()


def test_the_shipped_registry_builds_the_shipped_code_location():
    from lakehouse_assets.definitions import defs

    names = {s.silver for s in SOURCES}
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    history = {s.silver for s in SOURCES if silver.TABLES[s.silver].history}
    assert history == {"customers", "products"}  # the dimensions Gold keeps type-2 history of
    stream = {f"inventory_stream{s}" for s in ("", "_quarantine", "_arrivals", "_batches")}
    assert {k.path[1] for k in keys if k.path[0] == "silver"} == names | {
        f"{n}_quarantine" for n in names
    } | {f"{n}_history" for n in history} | stream
    assert {s.name for s in defs.sensors if s.name.endswith("_landed")} == {
        f"{s.name}_landed" for s in registry.landing_feeds()
    }


def test_a_read_no_source_declares_or_a_cycle_fails_at_once():
    def source(name, reads=()):
        return Source(name, "landing", name, name, "b", "s", reads=reads)

    with pytest.raises(ValueError, match="silver.a reads silver.nowhere, which no source has"):
        registry.in_dependency_order((source("a", ("nowhere",)),))
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        registry.in_dependency_order((source("a", ("b",)), source("b", ("a",))))
    ordered = registry.in_dependency_order((source("a", ("b",)), source("b")))
    assert [s.name for s in ordered] == ["b", "a"]
    with pytest.raises(ValueError, match="a database table has a key"):
        Source("x", "database", "x", "x", "b", "s")
