"""Silver assets: each writes its table and the quarantine table beside it, in one step,
and reports every declared quality rule of the table as an asset check."""

import importlib
import inspect

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

from lakehouse_assets.annotations import OWNERS, code_reference, layer
from lakehouse_assets.checks import check_specs, day_results
from lakehouse_assets.partitions import daily_partitions, single_run, window_of
from lakehouse_assets.resources import SparkResource
from lakehouse_assets.resources.catalog import table_column_schema
from spark_jobs import silver
from spark_jobs.registry import SOURCES, Source
from spark_jobs.silver import SilverTable


class SilverConfig(Config):
    evolve_schema: bool = False
    """Add fields that are new in incoming JSON to the Silver table as columns (additive
    only). Off by default: new fields are then reported by a warning check and kept in Bronze."""


def silver_asset(table: SilverTable) -> AssetsDefinition:
    """The Silver table and its quarantine, built in one step; its deps are its Bronze table
    and exactly the Silver tables its transform reads (the registry's ``reads``)."""
    name = table.name
    deps = [AssetKey(["bronze", table.bronze]), *(AssetKey(["silver", r]) for r in table.reads)]
    main_key = AssetKey(["silver", name])
    quarantine_key = AssetKey(["silver", f"{name}_quarantine"])
    module = inspect.getsourcefile(importlib.import_module(table.source.silver_module))
    common = {
        "deps": deps,
        "group_name": "silver",
        "kinds": {"spark", "iceberg"},
        "owners": OWNERS,
        "tags": layer("silver"),
        # The table's types, rules, cleaning and writer are declared in its own module.
        "metadata": code_reference(module or "", "TABLE = SilverTable(", "rules"),
    }

    history_key = AssetKey(["silver", f"{name}_history"]) if table.history else None
    specs = [
        AssetSpec(main_key, description=table.source.silver_description, **common),
        AssetSpec(
            quarantine_key,
            description=f"Rows of silver.{name} that broke a rule, with the rules.",
            **common,
        ),
    ]
    if history_key is not None:
        specs.append(
            AssetSpec(
                history_key,
                description=f"Every valid version of silver.{name}'s rows (one per key and "
                "updated_at), by the day it was extracted: what Gold's type-2 history reads.",
                **common,
            )
        )

    @multi_asset(
        name=f"silver_{name}",
        specs=specs,
        check_specs=check_specs(table.quality, main_key),
        partitions_def=daily_partitions,
        backfill_policy=single_run,
    )
    def _clean(context: AssetExecutionContext, config: SilverConfig, spark: SparkResource):
        window, settings = window_of(context), spark.settings()
        result = silver.run_table(
            spark.session,
            table,
            window,
            context.run_id,
            evolve_schema=config.evolve_schema,
            grace_days=settings.reference_grace_days,
            codegen_min_rows=settings.codegen_min_rows,
        )
        checks = day_results(context, main_key, result.verdicts, result.batch_rows_on)
        if not result.written:
            yield from checks
            broken = [v for v in result.verdicts if not v.passed]
            raise Failure(
                f"silver.{name} not written for {window}: "
                + "; ".join(f"{v.name}: {v.failing_rows} failing ({v.description})" for v in broken)
            )
        # What the partition plots show: each day's materialisation carries that day's figures
        # (they reconcile per day: Bronze = kept + quarantined + duplicates); the run's totals
        # and the table's size are the same on every day of the run.
        for day in context.partition_keys:
            context.add_asset_metadata(
                {
                    "dagster/row_count": result.written_per_day.get(day, 0),
                    "bronze_rows": result.bronze_per_day.get(day, 0),
                    "silver_rows": result.kept_per_day.get(day, 0),
                    "quarantined": result.quarantined_per_day.get(day, 0),
                    "duplicates_removed": result.duplicates_per_day.get(day, 0),
                },
                main_key,
                day,
            )
            context.add_asset_metadata(
                {"dagster/row_count": result.quarantined_per_day.get(day, 0)}, quarantine_key, day
            )
            if history_key is not None:  # the versions the day kept
                rows = result.kept_per_day.get(day, 0)
                context.add_asset_metadata({"dagster/row_count": rows}, history_key, day)
        run_totals = {
            "bronze_rows": result.bronze_rows,
            "silver_rows": result.rows,
            "quarantined": result.quarantined,
            "duplicates_removed": result.duplicates,
        }
        held = {}
        if table.holds:
            held = {
                "held_rows_rechecked": result.held_rechecked,
                "released_rows": result.released,
                "awaiting_rows": result.awaiting,
            }
        yield MaterializeResult(
            asset_key=main_key,
            metadata={
                "table_rows": result.table_rows,
                "dagster/table_name": result.table,
                "dagster/column_schema": table_column_schema(settings, result.table),
                "snapshot_id": str(result.snapshot_id),
                "window": str(window),
                "run_totals": run_totals,
                **held,
            },
        )
        yield from checks
        yield MaterializeResult(
            asset_key=quarantine_key,
            metadata={
                "dagster/table_name": f"{result.table}_quarantine",
                "dagster/column_schema": table_column_schema(
                    settings, f"{result.table}_quarantine"
                ),
                "window": str(window),
                "rows_by_rule": dict(sorted(result.rules.items())),
            },
        )
        if history_key is not None and table.history is not None:
            yield MaterializeResult(
                asset_key=history_key,
                metadata={
                    "dagster/table_name": table.history,
                    "dagster/column_schema": table_column_schema(settings, table.history),
                    "window": str(window),
                },
            )

    return _clean


def build_silver_assets(registered: tuple[Source, ...] = SOURCES) -> list[AssetsDefinition]:
    """One Silver multi-asset per source of the registry."""
    return [silver_asset(table) for table in silver.tables(registered).values()]


silver_assets = build_silver_assets()
