"""Gold assets: the dbt-spark marts, on the same Iceberg catalog as Bronze and Silver."""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    Output,
    PartitionsDefinition,
    RetryRequested,
    build_column_schema_change_checks,
)
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    dbt_assets,
)

from lakehouse_assets.annotations import OWNERS, layer
from lakehouse_assets.partitions import daily_partitions, days_of_run, single_run, window_of
from lakehouse_assets.resources import SparkResource, dbt_project
from lakehouse_assets.resources.catalog import open_catalog, table_metadata
from lakehouse_assets.resources.dbt import LakehouseDbtResource
from spark_jobs import storage
from spark_jobs.registry import SOURCES
from spark_jobs.session import answers, compiled_from
from spark_jobs.settings import Settings
from spark_jobs.window import DayWindow


class LakehouseTranslator(DagsterDbtTranslator):
    """dbt models are ``[gold, <model>]`` in group ``gold``; sources name their Silver asset."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return AssetKey(["gold", dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "gold" if dbt_resource_props["resource_type"] == "model" else None

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        # The model's own description only: its SQL (Jinja and all) is one click away through
        # the code reference, and pasted below the text it buries what a reader came for.
        return dbt_resource_props.get("description") or super().get_description(dbt_resource_props)

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return spec._replace(description=describe_test(manifest["nodes"][unique_id]))

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str]:
        return [*(super().get_owners(dbt_resource_props) or []), *OWNERS]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), **layer("gold")}

    def get_partitions_def(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> PartitionsDefinition | None:
        # dbt's `daily` tag: a mart partitioned by day, rebuilt for the run's days. The rest
        # (`current_state`: the dimensions) are rebuilt whole, in the same dbt invocation.
        if dbt_resource_props["resource_type"] == "model" and DAILY in dbt_resource_props["tags"]:
            return daily_partitions
        return None


def _relation(text: str) -> str:
    """``source('silver', 'orders')`` or ``ref('x')`` as a reader names it: silver.orders, x."""
    names = re.findall(r"'([^']+)'", text)
    return ".".join(names) or text


def describe_test(test: Mapping[str, Any]) -> str:
    """A dbt test in words, from its own metadata, for the check list in the UI: what it
    asserts and whether it warns or fails (dbt's severity)."""
    if test.get("description"):
        return test["description"]
    meta = test.get("test_metadata") or {}
    kind, args = meta.get("name", test["name"]), meta.get("kwargs", {})
    column = test.get("column_name") or args.get("column_name")
    said = {
        "not_null": f"{column} is never null",
        "unique": f"one row per {column}",
        "accepted_values": f"{column} is one of {', '.join(map(str, args.get('values', [])))}",
        "relationships": f"every {column} is a {args.get('field')} of "
        f"{_relation(args.get('to', ''))}",
        "expression_is_true": f"every row has {args.get('expression')}",
        "unique_combination_of_columns": "one row per "
        + ", ".join(args.get("combination_of_columns", [])),
        "has_every_row_of": f"every row of {_relation(args.get('source_relation', ''))} changed "
        f"in the run's window is here (by {args.get('key')})",
    }.get(kind, kind.replace("_", " "))
    severity = (test.get("config", {}).get("severity") or "error").lower()
    return f"[dbt {'warn' if severity == 'warn' else 'fail'}] {said}"


translator = LakehouseTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True)
)


def _dbt_build(
    context: AssetExecutionContext,
    dbt: LakehouseDbtResource,
    spark: SparkResource,
    window: DayWindow | None,
) -> Iterator:
    settings = spark.settings()
    check_thrift_server(settings)
    spark.return_free_heap()
    catalog = open_catalog(settings)
    environment, keep_parse = _dbt_environment(settings, spark)
    environment |= _window_environment(window)
    try:
        with _code_generation(settings, spark, window):
            for event in dbt.build(["build"], context, environment, settings.home, keep_parse):
                if isinstance(event, Output):
                    # Row counts, columns and the Iceberg snapshot, read through pyiceberg.
                    key = context.asset_key_for_output(event.output_name)
                    daily = key in DAILY_KEYS
                    extra = table_metadata(catalog, ".".join(key.path), window if daily else None)
                    per_day = extra.get("rows_per_day")
                    if per_day is not None:  # each day's plot point: its own rows, 0 included
                        for day in context.partition_keys:  # (not the table's total)
                            rows = per_day.get(day, 0)
                            context.add_asset_metadata({"dagster/row_count": rows}, key, day)
                    event = event.with_metadata({**event.metadata, **extra})
                yield event
    except DagsterDbtCliRuntimeError as exc:
        # A commit lost a race on the embedded SQLite catalog (with the `session` target,
        # another JVM held its lock): rebuilding is idempotent, so try again, not fail the day.
        if any(sign in str(exc) for sign in CATALOG_BUSY):
            raise RetryRequested(max_retries=2, seconds_to_wait=5) from exc
        raise


def _code_generation(
    settings: Settings, spark: SparkResource, window: DayWindow | None
) -> AbstractContextManager[bool]:
    """dbt's statements run in the run's own session (the ``embedded`` target): on code Spark
    compiles only once the Silver tables they read hold ``codegen_min_rows`` rows or more
    (``compiled_from``; whole: the dimensions read every row, and the daily marts' days are
    found by scanning them). Another target's Spark, and a run without days, keep Spark's
    default."""
    if settings.dbt_target != "embedded" or window is None:
        return nullcontext(True)
    session = spark.session
    rows = sum(storage.total_rows(session, storage.table_name("silver", s.silver)) for s in SOURCES)
    return compiled_from(session, rows, settings.codegen_min_rows)


def _window_environment(window: DayWindow | None) -> dict[str, str]:
    """The run's days for dbt_project/macros/window.sql: environment variables, not --vars,
    which dbt hashes into its parse state (new vars every day: a full re-parse every run).
    Set also without a window (empty: every day), so none leaks in from the environment."""
    if window is None:
        return {"LAKEHOUSE_WINDOW_START_DATE": "", "LAKEHOUSE_WINDOW_END_DATE": ""}
    return {
        "LAKEHOUSE_WINDOW_START_DATE": window.start.isoformat(),
        "LAKEHOUSE_WINDOW_END_DATE": window.end.isoformat(),
    }


RUN_PORT = "LAKEHOUSE_RUN_THRIFT_PORT"  # where profiles.yml's embedded output connects


def _dbt_environment(settings: Settings, spark: SparkResource) -> tuple[dict[str, str], bool]:
    """Where dbt finds Spark: the run's own session over Thrift (``embedded``), or the
    spark-defaults.conf a Spark of dbt's own reads (``session``); ``thrift`` needs neither.
    And whether dbt's parse state is worth keeping for the next run: not when this run served
    dbt on a port other than the home's (to dbt, another profile: the next run re-parses)."""
    if settings.dbt_target == "embedded":
        port = spark.thrift_port()
        return {RUN_PORT: str(port)}, port == settings.run_thrift_port
    if settings.dbt_target == "session":
        return {"SPARK_CONF_DIR": spark.conf_dir_for_external_sessions()}, True
    return {}, True


def check_thrift_server(settings: Settings) -> None:
    """dbt's thrift target needs its server: one line naming it, rather than dbt's retries
    and a stack trace. Nothing is written before this, so a rerun once it is up succeeds."""
    host, port = settings.thrift_host, settings.thrift_port
    if settings.dbt_target == "thrift" and not answers(host, port):
        raise Failure(
            f"the Spark Thrift server at {host}:{port} does not answer: dbt's thrift target "
            "(LAKEHOUSE_DBT_TARGET=thrift) builds Gold there; start it (one box: "
            "`make cluster-up`) and re-execute the run",
            allow_retries=False,
        )


CATALOG_BUSY = ("SQLITE_BUSY", "UncheckedSQLException: Unknown failure")


DAILY, CURRENT_STATE = "daily", "current_state"  # the dbt tags Gold's models carry


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=f"tag:{DAILY} tag:{CURRENT_STATE}",
    name="gold_marts",
    # The daily marts and a single-run backfill's window: one step, one `dbt build`.
    backfill_policy=single_run,
    dagster_dbt_translator=translator,
)
def gold_marts(context: AssetExecutionContext, dbt: LakehouseDbtResource, spark: SparkResource):
    """Gold in one dbt build: the daily marts for the run's days, the dimensions whole."""
    partitioned = days_of_run(context.run.tags) is not None
    yield from _dbt_build(context, dbt, spark, window_of(context) if partitioned else None)


# The daily marts (partitioned by day) and the dimensions (current state, not partitioned).
DAILY_KEYS = frozenset(spec.key for spec in gold_marts.specs if spec.partitions_def is not None)
DIMENSION_KEYS = frozenset(gold_marts.keys - DAILY_KEYS)


# A Gold table whose columns change (a model edit, a dbt upgrade) warns, naming the columns
# added, removed or retyped since its previous materialisation: downstream readers break on
# exactly that. The schema is the dagster/column_schema each materialisation records.
gold_schema_checks = build_column_schema_change_checks(assets=[gold_marts])
