"""Silver assets: each writes its table and the quarantine table beside it, in one step."""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    multi_asset,
)

from lakehouse_assets.partitions import daily_partitions, single_run, window_of
from lakehouse_assets.resources import SparkResource
from spark_jobs import silver
from spark_jobs.silver import SilverResult


@dataclass(frozen=True)
class SilverTable:
    name: str
    description: str
    upstream: tuple[tuple[str, str], ...]
    run: Callable[..., SilverResult]


TABLES = (
    SilverTable(
        "customers",
        "Current state of every customer: typed, latest version per customer_id, validated.",
        (("bronze", "customers"),),
        silver.run_customers,
    ),
    SilverTable(
        "products",
        "Current state of every product: typed, latest version per product_id, validated.",
        (("bronze", "products"),),
        silver.run_products,
    ),
    SilverTable(
        "orders",
        "Latest version of every order, typed, with customer and product references checked.",
        (("bronze", "orders"), ("silver", "customers"), ("silver", "products")),
        silver.run_orders,
    ),
    SilverTable(
        "clickstream",
        "Web events parsed from raw lines, one per event_id, with event date, hour and product.",
        (("bronze", "clickstream"),),
        silver.run_clickstream,
    ),
    SilverTable(
        "inventory",
        "Stock level per product and warehouse at the end of each day, from inventory events.",
        (("bronze", "inventory_events"), ("silver", "products")),
        silver.run_inventory,
    ),
)


def silver_asset(table: SilverTable) -> AssetsDefinition:
    deps = [AssetKey(list(key)) for key in table.upstream]
    main_key = AssetKey(["silver", table.name])
    quarantine_key = AssetKey(["silver", f"{table.name}_quarantine"])

    @multi_asset(
        name=f"silver_{table.name}",
        specs=[
            AssetSpec(
                main_key,
                deps=deps,
                group_name="silver",
                description=table.description,
                kinds={"spark", "iceberg"},
            ),
            AssetSpec(
                quarantine_key,
                deps=deps,
                group_name="silver",
                description=f"Rows of silver.{table.name} that broke a rule, with the rules.",
                kinds={"spark", "iceberg"},
            ),
        ],
        partitions_def=daily_partitions,
        backfill_policy=single_run,
    )
    def _clean(context: AssetExecutionContext, spark: SparkResource):
        window = window_of(context)
        result = table.run(spark.session, window, context.run_id)
        accounting = {
            "bronze_rows": result.bronze_rows,
            "silver_rows": result.rows,
            "quarantined": result.quarantined,
            "duplicates_removed": result.duplicates,
        }
        if not result.reconciles:
            # Rows would have vanished without a trace: never let that pass quietly.
            raise Failure(
                f"silver.{table.name} does not reconcile for {window}: {accounting}",
                metadata=accounting,
            )
        yield MaterializeResult(
            asset_key=main_key,
            metadata={
                "dagster/row_count": result.rows,
                "dagster/table_name": result.table,
                "snapshot_id": str(result.snapshot_id),
                "window": str(window),
                **accounting,
                **result.extra,
            },
        )
        yield MaterializeResult(
            asset_key=quarantine_key,
            metadata={
                "dagster/row_count": result.quarantined,
                "dagster/table_name": f"{result.table}_quarantine",
                "window": str(window),
                "rows_by_rule": dict(sorted(result.rules.items())),
            },
        )

    return _clean


silver_assets = [silver_asset(table) for table in TABLES]
