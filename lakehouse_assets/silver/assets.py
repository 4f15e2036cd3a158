"""Silver assets: each writes its table and the quarantine table beside it, in one step,
and reports every declared quality rule of the table as an asset check."""

from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    multi_asset,
)

from lakehouse_assets.checks import check_result, check_specs
from lakehouse_assets.partitions import daily_partitions, single_run, window_of
from lakehouse_assets.resources import SparkResource
from spark_jobs import silver


@dataclass(frozen=True)
class SilverAsset:
    name: str
    description: str
    upstream: tuple[tuple[str, str], ...]


ASSETS = (
    SilverAsset(
        "customers",
        "Current state of every customer: typed, latest version per customer_id, validated.",
        (("bronze", "customers"),),
    ),
    SilverAsset(
        "products",
        "Current state of every product: typed, latest version per product_id, validated.",
        (("bronze", "products"),),
    ),
    SilverAsset(
        "orders",
        "Latest version of every order, typed, with customer and product references checked.",
        (("bronze", "orders"), ("silver", "customers"), ("silver", "products")),
    ),
    SilverAsset(
        "clickstream",
        "Web events parsed from raw lines, one per event_id, with event date, hour and product.",
        (("bronze", "clickstream"), ("silver", "products")),
    ),
    SilverAsset(
        "inventory",
        "Stock level per product and warehouse at the end of each day, from inventory events.",
        (("bronze", "inventory_events"), ("silver", "products")),
    ),
)


class SilverConfig(Config):
    evolve_schema: bool = False
    """Add fields that are new in incoming JSON to the Silver table as columns (additive
    only). Off by default: new fields are then reported by a warning check and kept in Bronze."""


def silver_asset(spec: SilverAsset) -> AssetsDefinition:
    table = silver.TABLES[spec.name]
    deps = [AssetKey(list(key)) for key in spec.upstream]
    main_key = AssetKey(["silver", spec.name])
    quarantine_key = AssetKey(["silver", f"{spec.name}_quarantine"])

    @multi_asset(
        name=f"silver_{spec.name}",
        specs=[
            AssetSpec(
                main_key,
                deps=deps,
                group_name="silver",
                description=spec.description,
                kinds={"spark", "iceberg"},
            ),
            AssetSpec(
                quarantine_key,
                deps=deps,
                group_name="silver",
                description=f"Rows of silver.{spec.name} that broke a rule, with the rules.",
                kinds={"spark", "iceberg"},
            ),
        ],
        check_specs=check_specs(table.quality, main_key),
        partitions_def=daily_partitions,
        backfill_policy=single_run,
    )
    def _clean(context: AssetExecutionContext, config: SilverConfig, spark: SparkResource):
        window = window_of(context)
        result = silver.run_table(
            spark.session,
            table,
            window,
            context.run_id,
            evolve_schema=config.evolve_schema,
            grace_days=spark.settings().reference_grace_days,
        )
        checks = [check_result(v, main_key) for v in result.verdicts]
        if not result.written:
            yield from checks
            broken = [v for v in result.verdicts if not v.passed]
            raise Failure(
                f"silver.{spec.name} not written for {window}: "
                + "; ".join(f"{v.name}: {v.failing_rows} failing ({v.description})" for v in broken)
            )
        accounting = {
            "bronze_rows": result.bronze_rows,
            "silver_rows": result.rows,
            "quarantined": result.quarantined,
            "duplicates_removed": result.duplicates,
        }
        if table.holds:
            accounting |= {
                "held_rows_rechecked": result.held_rechecked,
                "released_rows": result.released,
                "awaiting_rows": result.awaiting,
            }
        yield MaterializeResult(
            asset_key=main_key,
            metadata={
                "dagster/row_count": result.rows,
                "dagster/table_name": result.table,
                "snapshot_id": str(result.snapshot_id),
                "window": str(window),
                **accounting,
            },
            check_results=checks,
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


silver_assets = [silver_asset(spec) for spec in ASSETS]
