"""Iceberg housekeeping as assets: one per lakehouse table, in the ``maintenance`` group,
run weekly by ``iceberg_maintenance`` (Sunday 03:00, before the 06:00 daily run) or from the
UI for one table. Each materialisation records what the table held before and after, so the
asset's plots show the warehouse staying bounded across weeks."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    ScheduleDefinition,
    asset,
    define_asset_job,
)
from pydantic import Field

from lakehouse_assets.annotations import OWNERS, layer
from lakehouse_assets.jobs import MAINTENANCE
from lakehouse_assets.partitions import TIMEZONE
from lakehouse_assets.resources import SparkResource
from spark_jobs.maintenance import Policy, maintain
from spark_jobs.storage import table_name

GROUP = MAINTENANCE


class MaintenanceConfig(Config):
    retention_days: int = Field(
        default=7,
        description="Snapshots older than this many days are expired (never the current one); "
        "unreferenced files older than this (and never younger than a day) are removed.",
    )
    recent_days: int = Field(
        default=7,
        description="Bin-pack the files of the partitions this many days back from the newest one.",
    )
    min_input_files: int = Field(
        default=2, description="A partition with at least this many data files is packed."
    )


def maintenance_asset(table: AssetKey) -> AssetsDefinition:
    table_layer, name = table.path
    full_name = table_name(table_layer, name)

    @asset(
        key=AssetKey([GROUP, f"{table_layer}_{name}"]),
        group_name=GROUP,
        kinds={"spark", "iceberg"},
        owners=OWNERS,
        tags=layer(GROUP),
        description=f"Housekeeping of {full_name}: expire old snapshots, bin-pack recent small "
        "files, rewrite manifests, remove orphan files.",
        metadata={"dagster/table_name": full_name},
    )
    def _maintain(
        context: AssetExecutionContext, config: MaintenanceConfig, spark: SparkResource
    ) -> MaterializeResult:
        session = spark.session
        if not session.catalog.tableExists(full_name):
            context.log.info(f"{full_name} does not exist yet: nothing to maintain")
            return MaterializeResult(metadata={"skipped": f"{full_name} not created yet"})
        policy = Policy(config.retention_days, config.recent_days, config.min_input_files)
        done = maintain(session, table_layer, name, policy)
        return MaterializeResult(
            metadata={
                "snapshots_before": done.before.snapshots,
                "snapshots_after": done.after.snapshots,
                "snapshots_expired": done.snapshots_expired,
                "files_deleted_by_expiry": done.files_deleted_by_expiry,
                "data_files_before": done.before.data_files,
                "data_files_after": done.after.data_files,
                "data_bytes_before": done.before.data_bytes,
                "data_bytes_after": done.after.data_bytes,
                "data_files_rewritten": done.data_files_rewritten,
                "manifests_before": done.before.manifests,
                "manifests_after": done.after.manifests,
                "orphan_files_removed": done.orphan_files_removed,
                "orphan_files_sample": ", ".join(done.orphans) or "none",
                "packed": done.rewrote,
                "properties_set": ", ".join(f"{k}={v}" for k, v in done.properties_set.items())
                or "none",
                "retention_days": config.retention_days,
            }
        )

    return _maintain


def build_maintenance_assets(tables: list[AssetKey]) -> list[AssetsDefinition]:
    """One housekeeping asset per table asset (key ``[layer, table]``)."""
    return [maintenance_asset(key) for key in sorted(tables, key=lambda k: tuple(k.path))]


iceberg_maintenance = define_asset_job(
    "iceberg_maintenance",
    selection=AssetSelection.groups(GROUP),
    description="Iceberg housekeeping of every lakehouse table, in one run (one Spark JVM).",
)

weekly_maintenance = ScheduleDefinition(
    name="iceberg_maintenance_weekly",
    job=iceberg_maintenance,
    cron_schedule="0 3 * * 0",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
)
