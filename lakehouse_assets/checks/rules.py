"""Turn a table's declared rules into check specs, and its verdicts into check results.

Severity follows the rule's action: ``warn`` checks never block; ``drop`` checks warn when
rows were quarantined and block when more than ``fail_above`` of a batch broke the rule;
``fail`` checks block everything downstream of the table when anything breaks them.
"""

from collections.abc import Callable, Iterable, Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
)

# Not exported by dagster; AssetCheckResult fills it in the same way for a one-partition step.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as Target,
)

from lakehouse_assets.partitions import daily_partitions
from spark_jobs.quality import Verdict
from spark_jobs.silver.checks import TableRules


def check_specs(quality: TableRules, asset_key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            rule.name,
            asset=asset_key,
            description=f"[{rule.action}] {rule.description}",
            blocking=rule.blocking,
            partitions_def=daily_partitions,
            metadata={"action": rule.action},
        )
        for rule in quality.all
    ]


def _metadata(verdict: Verdict) -> dict:
    metadata = {
        "action": verdict.action,
        "failing_rows": verdict.failing_rows,
        "sample_failing_keys": MetadataValue.json(verdict.sample),
        "rule": verdict.description,
    }
    if verdict.per_day:
        metadata["failing_rows_per_day"] = MetadataValue.json(verdict.per_day)
    for name, value in verdict.detail.items():
        if value is None:
            continue
        metadata[name] = MetadataValue.json(value) if isinstance(value, dict | list) else value
    return metadata


def _summary(verdict: Verdict) -> str | None:
    return None if verdict.passed else f"{verdict.failing_rows} failing: {verdict.description}"


def day_results(
    context: AssetExecutionContext,
    asset_key: AssetKey,
    verdicts: Iterable[Verdict],
    batch_rows_on: Callable[[str], int],
) -> Iterator[Output | AssetCheckEvaluation]:
    """Each verdict as one check evaluation per day of the run, each with that day's counts.

    A range run (a single-run backfill) has no partition key of its own, so an
    ``AssetCheckResult`` would be recorded once without a partition and every day's planned
    check would read "Skipped" in the UI. Dagster plans one execution per day; this records
    one result per day against it: passed, warned or failed by that day's rows. A blocking
    failure on any day fails the step, as a failed ``AssetCheckResult`` would.

    Call it after the asset's materialisation is yielded: each day's result points at that
    day's materialisation, which is what makes it the current result of the day's check.
    """
    assets_def = context.assets_def
    days = context.partition_keys
    targets = {day: _latest_materialization(context, asset_key, day) for day in days}
    for verdict in verdicts:
        key = AssetCheckKey(asset_key, verdict.name)
        if key not in context.selected_asset_check_keys:
            continue
        spec = assets_def.get_spec_for_check_key(key)
        yield Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
        for day in days:
            judged = verdict.on_day(day, batch_rows_on(day))
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=verdict.name,
                passed=judged.passed,
                severity=AssetCheckSeverity(judged.severity),
                metadata=_metadata(judged),
                description=_summary(judged),
                blocking=spec.blocking,
                partition=day,
                target_materialization_data=targets[day],
            )


def _latest_materialization(
    context: AssetExecutionContext, asset_key: AssetKey, day: str
) -> Target | None:
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day]), limit=1
    ).records
    if not records:
        return None  # nothing written (a blocked table): the result stands on its own
    latest = records[0]
    run_id = latest.event_log_entry.run_id
    return Target(storage_id=latest.storage_id, run_id=run_id, timestamp=latest.timestamp)
