"""Turn a table's declared rules into check specs, and its verdicts into check results.

Severity follows the rule's action: ``warn`` checks never block; ``drop`` checks warn when
rows were quarantined and block when more than ``fail_above`` of a batch broke the rule;
``fail`` checks block everything downstream of the table when anything breaks them.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from lakehouse_assets.partitions import daily_partitions
from spark_jobs.quality import TableRules, Verdict


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


def check_result(verdict: Verdict, asset_key: AssetKey) -> AssetCheckResult:
    metadata = {
        "action": verdict.action,
        "failing_rows": verdict.failing_rows,
        "sample_failing_keys": MetadataValue.json(verdict.sample),
        "rule": verdict.description,
    }
    if verdict.per_day:
        metadata["failing_rows_per_day"] = MetadataValue.json(verdict.per_day)
    for name, value in verdict.detail.items():
        metadata[name] = MetadataValue.json(value) if isinstance(value, dict | list) else value
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=verdict.name,
        passed=verdict.passed,
        severity=AssetCheckSeverity(verdict.severity),
        metadata=metadata,
        description=None
        if verdict.passed
        else f"{verdict.failing_rows} failing: {verdict.description}",
    )
