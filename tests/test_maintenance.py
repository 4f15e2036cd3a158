"""Iceberg housekeeping through the maintenance assets, on a real table of the catalog:
snapshots expired (never the current one), small files packed, manifests rewritten, orphan
files removed only when old, and the data unchanged throughout. And the file layout a table's
writes leave, which its reads depend on.
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, RunConfig, materialize
from pyspark.sql import functions as F

from lakehouse_assets.definitions import defs
from lakehouse_assets.maintenance.assets import MaintenanceConfig, maintenance_asset
from lakehouse_assets.resources import SparkResource
from spark_jobs import storage
from spark_jobs.window import DayWindow

PROBE = "lakehouse.gold.maintenance_probe"
KEY = AssetKey(["gold", "maintenance_probe"])


@pytest.fixture
def probe(spark, catalog):
    """Five small commits: one file on an old day, four on the newest day."""
    spark.sql(f"DROP TABLE IF EXISTS {PROBE} PURGE")
    spark.sql(f"CREATE TABLE {PROBE} (id BIGINT, amount DECIMAL(12,2), d DATE) PARTITIONED BY (d)")
    spark.sql(f"INSERT INTO {PROBE} VALUES (0, 1.00, DATE'2026-05-01')")
    for i in range(1, 5):
        spark.sql(f"INSERT INTO {PROBE} VALUES ({i}, {i}.25, DATE'2026-05-30')")
    data = Path(catalog.load_table("gold.maintenance_probe").location().removeprefix("file:"))
    data = data / "data"
    stale, fresh = data / "left-by-a-killed-write.parquet", data / "being-written-now.parquet"
    for orphan in (stale, fresh):
        orphan.write_bytes(b"PAR1 not referenced by any snapshot")
    month_ago = time.time() - 30 * 86400
    os.utime(stale, (month_ago, month_ago))
    yield stale, fresh
    spark.sql(f"DROP TABLE IF EXISTS {PROBE} PURGE")


def contents(spark) -> tuple:
    row = spark.sql(f"SELECT count(*), sum(amount), sum(id) FROM {PROBE}").first()
    return tuple(row)


def run(**config) -> dict:
    housekeeping = maintenance_asset(KEY)
    result = materialize(
        [housekeeping],
        resources={"spark": SparkResource()},
        run_config=RunConfig({housekeeping.op.name: MaintenanceConfig(**config)}),
    )
    assert result.success
    [event] = result.asset_materializations_for_node(housekeeping.op.name)
    return {name: value.value for name, value in event.metadata.items()}


def test_housekeeping_expires_packs_and_removes_old_orphans_only(spark, probe):
    stale, fresh = probe
    before = contents(spark)
    got = run(retention_days=0)  # every snapshot but the current one is old enough
    assert (got["snapshots_before"], got["snapshots_expired"]) == (5, 4)
    # The newest day's four files become one; the old day's single file is left alone.
    assert (got["data_files_before"], got["data_files_after"]) == (5, 2)
    assert got["data_files_rewritten"] == 4
    assert got["packed"] == "d from 2026-05-23 to 2026-05-30"
    assert got["orphan_files_removed"] == 1 and stale.name in got["orphan_files_sample"]
    # A table made without the project's write properties (by hand here) gets them, once.
    assert got["properties_set"] == (
        "write.parquet.row-group-size-bytes=8388608, "
        "write.spark.advisory-partition-size-bytes=33554432"
    )
    assert run(retention_days=0)["properties_set"] == "none"
    assert not stale.exists() and fresh.exists()  # a file younger than a day is never touched
    assert contents(spark) == before  # same rows, same money
    spark.sql(f"REFRESH TABLE {PROBE}")
    assert spark.sql(f"SELECT count(*) FROM {PROBE}.snapshots").first()[0] >= 1


def test_the_default_retention_keeps_a_weeks_history(spark, probe):
    got = run()  # 7 days: these snapshots are minutes old
    assert got["snapshots_expired"] == 0
    assert got["orphan_files_removed"] == 1  # the month-old orphan still goes
    spark.sql(f"SELECT * FROM {PROBE} VERSION AS OF {first_snapshot(spark)}").collect()


def first_snapshot(spark) -> int:
    return spark.sql(f"SELECT min_by(snapshot_id, committed_at) FROM {PROBE}.snapshots").first()[0]


@pytest.mark.fast
def test_every_table_has_a_weekly_housekeeping_asset_outside_the_daily_job():
    graph = defs.resolve_asset_graph()
    tables = {k for k in graph.get_all_asset_keys() if k.path[0] in ("bronze", "silver", "gold")}
    housekeeping = {k for k in graph.get_all_asset_keys() if k.path[0] == "maintenance"}
    # The stream's arrivals log keeps itself compact (spark_jobs.stream.compact_arrivals).
    maintained = tables - {AssetKey(["silver", "inventory_stream_arrivals"])}
    assert housekeeping == {AssetKey(["maintenance", "_".join(k.path)]) for k in maintained}
    job = defs.resolve_job_def("iceberg_maintenance")
    assert set(job.asset_layer.executable_asset_keys) == housekeeping
    daily = defs.resolve_job_def("daily_lakehouse").asset_layer.executable_asset_keys
    assert not housekeeping & set(daily)
    schedule = defs.resolve_schedule_def("iceberg_maintenance_weekly")
    assert schedule.cron_schedule == "0 3 * * 0"


@pytest.mark.fast
def test_a_procedure_argument_that_cannot_be_quoted_is_refused_not_spliced():
    """Iceberg's procedures take no bound parameters: their values are written as literals,
    so a string holding both quotes (or a backslash) must not reach the SQL at all."""
    from spark_jobs.maintenance import procedure

    for value in ("""it's "quoted" """, "back\\slash"):
        with pytest.raises(ValueError, match="cannot pass"):
            procedure(None, "rewrite_data_files", table="silver.orders", where=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a procedure"):
        procedure(None, "expire_snapshots; DROP", table="silver.orders")  # type: ignore[arg-type]


def test_a_days_rows_are_written_and_read_by_every_core(spark):
    """One day of about 30 MB (compressed) is written by more than one task and read back by
    more than one: with Iceberg's defaults, both were one task on one core whatever the core
    count (one file of one row group per day), the largest part of Silver's time at 1 M events."""
    name, day = "lakehouse.gold.layout_probe", date(2026, 5, 2)
    spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")
    hashes = [F.sha2(F.concat(F.col("id").cast("string"), F.lit(s)), 256) for s in "ab"]
    rows = spark.range(0, 400_000, numPartitions=2).select(
        "id", hashes[0].alias("a"), hashes[1].alias("b"), F.lit(day).alias("d")
    )
    try:
        storage.replace_window(rows, name, "d", DayWindow(day, day + timedelta(days=1)))
        files = [r.file_path for r in spark.table(f"{name}.files").collect()]
        assert len(files) >= 2, f"one writer task: {files}"
        # Each file splits further (several row groups): what a day written by one task (a
        # Bronze day of one landed file) is read in parallel by.
        groups = [pq.ParquetFile(f.removeprefix("file:")).metadata.num_row_groups for f in files]
        assert min(groups) >= 2, groups
        read = spark.table(name).where(F.col("d") == F.lit(day))
        assert read.rdd.getNumPartitions() >= 2
        assert read.count() == 400_000
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")
