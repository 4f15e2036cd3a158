"""The same Iceberg catalog through pyiceberg: reading tables without starting a JVM."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from dagster import TableColumn, TableColumnConstraints, TableSchema
from pyiceberg.catalog.sql import SqlCatalog

from spark_jobs.settings import CATALOG, LakehouseSetupError, Settings
from spark_jobs.window import DayWindow, iceberg_filter


def sqlalchemy_uri(settings: Settings) -> str:
    """The catalog's JDBC URI as SQLAlchemy wants it."""
    uri = settings.catalog_uri
    if uri.startswith("jdbc:sqlite:"):
        # Wait for another writer as long as the JVMs do (busy_timeout 30 s), not 5 s.
        return "sqlite:///" + uri.removeprefix("jdbc:sqlite:") + "?timeout=30"
    if uri.startswith("jdbc:postgresql://"):
        creds = ""
        if settings.catalog_user:
            creds = f"{settings.catalog_user}:{settings.catalog_password}@"
        return f"postgresql+psycopg2://{creds}{uri.removeprefix('jdbc:postgresql://')}"
    raise LakehouseSetupError(
        f"pyiceberg cannot open catalog {uri}: use jdbc:sqlite or jdbc:postgresql"
    )


class _SharedSchemaIsV0(logging.Filter):
    """Spark's Iceberg JDBC catalog creates and uses the v0 catalog schema; pyiceberg reads it
    as it is (migrating it would be for Spark to do), so its warning about it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "detected a v0 schema" not in record.getMessage()


logging.getLogger("pyiceberg.catalog.sql").addFilter(_SharedSchemaIsV0())


def open_catalog(settings: Settings) -> SqlCatalog:
    # The name must equal Spark's catalog name: the JDBC catalog stores it with every table.
    return SqlCatalog(CATALOG, uri=sqlalchemy_uri(settings), warehouse=settings.warehouse)


def table_metadata(catalog: SqlCatalog, identifier: str, window: DayWindow | None) -> dict:
    """Rows (the table's, and per day of the window for a day-partitioned table), snapshot id
    and column schema, read without Spark.

    Counts come from Iceberg's metadata, not from reading data: the snapshot summary holds
    the table's rows, and a partition filter on the day column selects whole data files.
    """
    table = catalog.load_table(identifier)
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    records = summary["total-records"] if summary else None  # None when the key is missing
    total = int(records) if records is not None else 0
    meta = {
        "dagster/table_name": f"{CATALOG}.{identifier}",
        "dagster/column_schema": column_schema(table),
        "snapshot_id": str(snapshot.snapshot_id) if snapshot else "none",
        "table_rows": total,
        "dagster/row_count": total,
    }
    per_day = rows_per_day(table, window) if window is not None and snapshot else None
    if per_day is not None:
        meta["rows_per_day"] = per_day
    return meta


def rows_per_day(table, window: DayWindow) -> dict[str, int] | None:
    """Rows of each day of the window in a table partitioned by its day column; None for a
    table that is not. File record counts, unless deletes make a scan necessary."""
    from pyiceberg.transforms import IdentityTransform

    fields = table.spec().fields
    if not fields or not isinstance(fields[0].transform, IdentityTransform):
        return None
    column = table.schema().find_field(fields[0].source_id).name
    in_window = iceberg_filter(column, window)
    counts = dict.fromkeys((d.isoformat() for d in window.days), 0)
    tasks = list(table.scan(row_filter=in_window, selected_fields=(column,)).plan_files())
    if any(task.delete_files for task in tasks):  # merge-on-read deletes: count the rows
        days = table.scan(row_filter=in_window, selected_fields=(column,)).to_arrow()[column]
        for day in days.to_pylist():
            counts[day.isoformat()] = counts.get(day.isoformat(), 0) + 1
        return counts
    for task in tasks:
        value = task.file.partition[0]  # a date partition value: days since 1970 in Iceberg
        day = value if isinstance(value, date) else EPOCH + timedelta(days=value)
        counts[day.isoformat()] = counts.get(day.isoformat(), 0) + task.file.record_count
    return counts


EPOCH = date(1970, 1, 1)


def column_schema(table) -> TableSchema:
    """The Iceberg schema as Dagster's column schema: names, types, required and docs."""
    return TableSchema(
        columns=[
            TableColumn(
                field.name,
                str(field.field_type),
                description=field.doc,
                constraints=TableColumnConstraints(nullable=not field.required),
            )
            for field in table.schema().fields
        ]
    )


def table_column_schema(settings: Settings, name: str) -> TableSchema:
    """The column schema of ``lakehouse.<layer>.<table>`` (or ``<layer>.<table>``), from its
    Iceberg metadata: the same type names for every layer, whoever wrote the table."""
    identifier = name.removeprefix(f"{CATALOG}.")
    return column_schema(open_catalog(settings).load_table(identifier))
