"""The same Iceberg catalog through pyiceberg: reading tables without starting a JVM."""

from __future__ import annotations

from pyiceberg.catalog.sql import SqlCatalog

from spark_jobs.settings import CATALOG, LakehouseSetupError, Settings
from spark_jobs.window import DayWindow


def sqlalchemy_uri(settings: Settings) -> str:
    """The catalog's JDBC URI as SQLAlchemy wants it."""
    uri = settings.catalog_uri
    if uri.startswith("jdbc:sqlite:"):
        return "sqlite:///" + uri.removeprefix("jdbc:sqlite:")
    if uri.startswith("jdbc:postgresql://"):
        creds = ""
        if settings.catalog_user:
            creds = f"{settings.catalog_user}:{settings.catalog_password}@"
        return f"postgresql+psycopg2://{creds}{uri.removeprefix('jdbc:postgresql://')}"
    raise LakehouseSetupError(
        f"pyiceberg cannot open catalog {uri}: use jdbc:sqlite or jdbc:postgresql"
    )


def open_catalog(settings: Settings) -> SqlCatalog:
    # The name must equal Spark's catalog name: the JDBC catalog stores it with every table.
    return SqlCatalog(CATALOG, uri=sqlalchemy_uri(settings), warehouse=settings.warehouse)


def table_metadata(catalog: SqlCatalog, identifier: str, window: DayWindow | None) -> dict:
    """Row count, window row count (partitioned tables) and snapshot id, read without Spark.

    Counts come from Iceberg's metadata, not from reading data: the snapshot summary holds
    the table's rows, and a partition filter on the day column selects whole data files.
    """
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    table = catalog.load_table(identifier)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    total = int(summary["total-records"]) if summary and "total-records" in summary else 0
    meta = {
        "dagster/table_name": f"{CATALOG}.{identifier}",
        "snapshot_id": str(snapshot.snapshot_id) if snapshot else "none",
        "table_rows": total,
    }
    fields = table.spec().fields
    if window is not None and fields and snapshot is not None:
        column = table.schema().find_field(fields[0].source_id).name
        in_window = And(
            GreaterThanOrEqual(column, window.start.isoformat()),
            LessThan(column, window.end.isoformat()),
        )
        tasks = table.scan(row_filter=in_window).plan_files()
        if any(task.delete_files for task in tasks):  # merge-on-read deletes: count the rows
            meta["dagster/row_count"] = table.scan(row_filter=in_window).count()
        else:
            meta["dagster/row_count"] = sum(task.file.record_count for task in tasks)
    else:
        meta["dagster/row_count"] = total
    return meta
