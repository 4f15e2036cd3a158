"""Quality rules, declared once beside each table, with Delta-Live-Tables-style actions.

A row rule is a name, a condition that is true when the row *fails*, and an action:
- ``warn``: keep the row, count it;
- ``drop``: move the row to quarantine with the rule's name, keep going (it escalates to a
  failure when more than ``fail_above`` of the batch breaks it: that is an upstream outage,
  not dirt);
- ``fail``: quarantine the row and fail the check with ERROR severity, which blocks everything
  downstream of the table for that run.

A table check (``spark_jobs.silver.checks``) looks at the whole batch or table. Both become
Dagster asset checks; this module knows nothing of Dagster, only of DataFrames and verdicts.

Conditions that evaluate to NULL count as passing, so each rule says how it treats NULL
(the ``*_not_null`` rules do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row

Action = Literal["warn", "drop", "fail"]
RULES_COLUMN = "_rules_failed"
WARNINGS_COLUMN = "_rules_warned"
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class Rule:
    """A row-level rule. ``fails`` builds the Column lazily (it needs a SparkContext)."""

    name: str
    kind: str
    fails: Callable[[], Column]
    action: Action = "drop"
    description: str = ""
    fail_above: float | None = 0.5

    def __post_init__(self) -> None:
        if self.action not in ("warn", "drop", "fail"):
            raise ValueError(f"rule {self.name}: unknown action {self.action!r}")

    @property
    def blocking(self) -> bool:
        return self.action == "fail" or (self.action == "drop" and self.fail_above is not None)

    @property
    def final(self) -> bool:
        """False for a rule that only holds rows back until something arrives (``awaiting``)."""
        return self.kind != "awaiting"

    def where(self, guard: Callable[[], Column]) -> Rule:
        """The same rule, applied only to rows for which ``guard`` is true."""
        inner = self.fails
        return replace(self, fails=lambda: guard() & inner())


@dataclass(frozen=True)
class Verdict:
    """What one rule or check found in one batch."""

    name: str
    action: Action
    passed: bool
    severity: Literal["WARN", "ERROR"]
    failing_rows: int
    description: str
    sample: list[str] = field(default_factory=list)
    per_day: dict[str, int] = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    scope: Literal["day", "window"] = "window"
    """``day``: ``per_day`` says what failed on each day; ``window``: the verdict is about the
    whole batch (a duplicate key, a missing column) and holds for each of its days."""
    fail_above: float | None = None
    sample_per_day: dict[str, list[str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """passed, warned or failed: the words of the daily quality score."""
        if self.passed:
            return "passed"
        return "failed" if self.severity == "ERROR" else "warned"

    def on_day(self, day: str, batch_rows: int) -> Verdict:
        """This verdict for one day of its window, judged on that day's ``batch_rows``.

        A range run records one result per day, so each day's check shows what that day's
        rows did, and a bad day blocks even when the window's proportion would not.
        """
        if self.scope == "window":
            return replace(self, detail={**self.detail, "judged_on": "window"})
        n = self.per_day.get(day, 0)
        sample = self.sample_per_day.get(day, [day] if n else [])
        detail = {name: _of_day(value, day) for name, value in self.detail.items()}
        detail["batch_rows"] = batch_rows
        if "held_rows" in self.detail:  # held rows wait; they are not a failure
            return replace(self, per_day={day: n}, sample=sample, detail={**detail, "held_rows": n})
        too_many = self.fail_above is not None and batch_rows and n / batch_rows > self.fail_above
        failed = bool(n) and (self.action == "fail" or (self.action == "drop" and too_many))
        return replace(
            self,
            passed=n == 0,
            severity="ERROR" if failed else "WARN",
            failing_rows=n,
            sample=sample,
            per_day={day: n},
            detail=detail,
        )


def _of_day(value, day: str):
    """A detail given per day (``{"2026-01-01": ...}``) narrowed to ``day``; others as they are."""
    if isinstance(value, dict) and value and all(_is_day(k) for k in value):
        return value.get(day)
    return value


def _is_day(text) -> bool:
    try:
        date.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


# ------------------------------------------------------------------ row rules
def not_null(column: str, action: Action = "drop", raw: str | None = None) -> Rule:
    """``column`` is present. With ``raw`` (its text before conversion), a value that is there
    but does not convert is left to the ``parses`` rule, so each row breaks one rule."""
    tested = raw or column
    return Rule(
        f"{column}_not_null",
        "not_null",
        lambda: F.col(tested).isNull(),
        action,
        f"{column} is present",
    )


def accepted_values(column: str, values: Sequence[str], action: Action = "drop") -> Rule:
    allowed = list(values)
    return Rule(
        f"{column}_accepted",
        "accepted_values",
        lambda: F.col(column).isNotNull() & ~F.col(column).isin(allowed),
        action,
        f"{column} in {sorted(allowed)}",
    )


def between(
    column: str,
    low: float | None = None,
    high: float | None = None,
    *,
    name: str | None = None,
    strict_low: bool = False,
    action: Action = "drop",
) -> Rule:
    def fails() -> Column:
        out = F.lit(False)
        if low is not None:
            out = out | (F.col(column) <= low if strict_low else F.col(column) < low)
        if high is not None:
            out = out | (F.col(column) > high)
        return out

    lo = "" if low is None else f"{'>' if strict_low else '>='} {low}"
    hi = "" if high is None else f"<= {high}"
    return Rule(
        name or f"{column}_between",
        "between",
        fails,
        action,
        f"{column} {lo}{' and ' if lo and hi else ''}{hi}",
    )


def parses(raw: str, typed: str, action: Action = "drop") -> Rule:
    """The raw value is present but did not convert to its type (e.g. a bad timestamp)."""
    return Rule(
        f"{typed}_valid",
        "parses",
        lambda: F.col(raw).isNotNull() & F.col(typed).isNull(),
        action,
        f"{raw} converts to its type",
    )


PAST_GRACE = "_past_grace"


def references(
    column: str, found: str, target: str, reference: str, action: Action = "drop"
) -> tuple[Rule, Rule]:
    """Referential integrity, allowing for late arrival: two rules on one condition.

    ``found`` is the joined key from ``target`` (NULL when absent). A row whose reference is
    missing is first *held* (``awaiting_<reference>``, never a failure: the customer created a
    minute before midnight arrives with tomorrow's extraction); once the row is older than the
    grace period (the ``_past_grace`` column the transform sets) it is a final
    ``<reference>_exists`` failure. Either way it is re-evaluated on every later run and
    released as soon as its reference arrives.
    """

    def missing() -> Column:
        return F.col(column).isNotNull() & F.col(found).isNull()

    return (
        Rule(
            f"awaiting_{reference}",
            "awaiting",
            lambda: missing() & ~F.col(PAST_GRACE),
            "drop",
            f"{column} not yet in {target}: held, re-checked every run",
            fail_above=None,
        ),
        Rule(
            f"{reference}_exists",
            "references",
            lambda: missing() & F.col(PAST_GRACE),
            action,
            f"{column} references {target} (after the grace period)",
        ),
    )


def within_days(
    column: str,
    day: str,
    *,
    before_days: int | None = None,
    after_hours: float = 24,
    name: str | None = None,
    action: Action = "drop",
) -> Rule:
    """Plausibility: ``column`` lies from ``before_days`` before ``day`` (the landing or
    extraction day) to ``after_hours`` after that day's end. An order dated 2099 or a click
    a year ahead is dirt, not a new partition."""

    def fails() -> Column:
        day_start = F.to_timestamp(F.col(day))
        late = F.col(column) > day_start + F.expr(f"INTERVAL {int(24 + after_hours)} HOURS")
        if before_days is None:
            return late
        return late | (F.col(column) < day_start - F.expr(f"INTERVAL {int(before_days)} DAYS"))

    lo = f"{before_days} days before" if before_days is not None else "any time before"
    return Rule(
        name or f"{column}_plausible",
        "plausible",
        fails,
        action,
        f"{column} from {lo} the day to {after_hours:g}h after it",
    )


# ------------------------------------------------------------------ applying row rules
def mark_rules(df: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    """``df`` with ``_rules_failed`` (names of the drop/fail rules a row breaks) and
    ``_rules_warned`` (of the warn rules): lazy, for ``split_marked`` once checkpointed."""

    def names(selected: Sequence[Rule]) -> Column:
        flagged = [F.when(F.coalesce(r.fails(), F.lit(False)), F.lit(r.name)) for r in selected]
        if not flagged:
            return F.array().cast("array<string>")
        # The NULLs out by array_except (rule names are distinct), not a filter with a lambda:
        # a higher-order function has no generated code (10% of a 1 M-event judging).
        return F.array_except(F.array(*flagged), F.array(F.lit(None).cast("string")))

    return df.withColumns(
        {
            RULES_COLUMN: names([r for r in rules if r.action != "warn"]),
            WARNINGS_COLUMN: names([r for r in rules if r.action == "warn"]),
        }
    )


def split_marked(marked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``mark_rules``' rows as (kept, with ``_rules_warned``; quarantined, with
    ``_rules_failed``)."""
    kept = marked.where(F.size(RULES_COLUMN) == 0).drop(RULES_COLUMN)
    bad = marked.where(F.size(RULES_COLUMN) > 0).drop(WARNINGS_COLUMN)
    return kept, bad


def apply_rules(df: DataFrame, rules: Sequence[Rule]) -> tuple[DataFrame, DataFrame]:
    """Split into (kept rows, quarantined rows), as ``split_marked`` says.

    Checkpointed: the kept and the quarantined rows are two filters of one judged batch, so
    they never disagree and the joins to references run once. A runner reads both after
    writing tables they may have read (a batch's earlier days): they stay as judged.
    """
    return split_marked(mark_rules(df, rules).localCheckpoint())


RANK_COLUMN = "_rank"


def rank_first(df: DataFrame, keys: Sequence[str], order: Sequence[Column]) -> DataFrame:
    """``df`` with ``_rank``: 1 for the first row of each key by ``order`` and for every row
    with a NULL key, more for the later copies.

    Checkpointed: the kept rows, the duplicates and whatever else a table derives from the
    batch are filters of this one evaluation, never a second parse, join or sort of the
    batch (each was several seconds at 1 M events).
    """
    from pyspark.sql import Window

    has_key = F.lit(True)
    for key in keys:
        has_key = has_key & F.col(key).isNotNull()
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy(*order))
    return df.withColumn(RANK_COLUMN, F.when(has_key, rank).otherwise(1)).localCheckpoint()


def keep_first(
    df: DataFrame, keys: Sequence[str], order: Sequence[Column]
) -> tuple[DataFrame, DataFrame]:
    """One row per key (the first by ``order``); rows with a NULL key are all kept.

    Returns (kept, dropped duplicates).
    """
    return split_ranked(rank_first(df, keys, order))


def split_ranked(ranked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``rank_first``'s rows as (kept: the first of each key, dropped: the later copies)."""
    kept = ranked.where(F.col(RANK_COLUMN) == 1).drop(RANK_COLUMN)
    dropped = ranked.where(F.col(RANK_COLUMN) > 1).drop(RANK_COLUMN)
    return kept, dropped


def flagged_rules(flagged: DataFrame, rules_column: str, key: str, day: str) -> DataFrame:
    """One row (rule, key, day) per rule each row broke: what ``rule_stats_of`` reads."""
    return flagged.select(
        F.explode(rules_column).alias("rule"),
        F.col(key).cast("string").alias("key"),
        F.col(day).cast("string").alias("day"),
    )


def rule_stats(flagged: DataFrame, rules_column: str, key: str, day: str) -> dict[str, dict]:
    """Per rule: rows, a sample of keys and rows per day, in one pass over the flagged rows."""
    return rule_stats_of(flagged_rules(flagged, rules_column, key, day))


def rule_stats_of(exploded: DataFrame) -> dict[str, dict]:
    """``rule_stats`` of ``flagged_rules``' rows (of one frame, or a union of several)."""
    return rule_stats_from(per_rule_and_day(exploded).collect())


def per_rule_and_day(exploded: DataFrame) -> DataFrame:
    """``flagged_rules``' rows aggregated: (rule, day, n, keys), what ``rule_stats_from``
    reads (collected alone, or in one job with other aggregates)."""
    return exploded.groupBy("rule", "day").agg(
        F.count(F.lit(1)).alias("n"), F.slice(F.collect_list("key"), 1, SAMPLE_SIZE).alias("keys")
    )


def rule_stats_from(rows: Iterable[Row]) -> dict[str, dict]:
    """Per rule: rows, a sample of keys and rows per day, from ``per_rule_and_day``'s rows."""
    stats: dict[str, dict] = {}
    for row in rows:
        entry = stats.setdefault(
            row["rule"], {"rows": 0, "sample": [], "per_day": {}, "sample_per_day": {}}
        )
        keys = [k for k in row["keys"] if k]
        entry["rows"] += row["n"]
        entry["per_day"][row["day"]] = row["n"]
        entry["sample_per_day"][row["day"]] = keys
        entry["sample"] = (entry["sample"] + keys)[:SAMPLE_SIZE]
    return stats


def judge_rule(rule: Rule, stats: dict | None, batch_rows: int) -> Verdict:
    """A rule's verdict from the rows it flagged in a batch of ``batch_rows``."""
    stats = stats or {"rows": 0, "sample": [], "per_day": {}, "sample_per_day": {}}
    n = stats["rows"]
    by_day = {"per_day": stats["per_day"], "sample_per_day": stats["sample_per_day"]}
    if not rule.final:
        # Held rows are not a failure: they are counted, and released when they can be.
        return Verdict(
            name=rule.name,
            action=rule.action,
            passed=True,
            severity="WARN",
            failing_rows=0,
            description=rule.description,
            sample=stats["sample"],
            detail={"batch_rows": batch_rows, "kind": rule.kind, "held_rows": n},
            scope="day",
            **by_day,
        )
    severity: Literal["WARN", "ERROR"] = "WARN"
    if rule.action == "fail" and n:
        severity = "ERROR"
    too_many = rule.fail_above is not None and batch_rows and n / batch_rows > rule.fail_above
    if rule.action == "drop" and too_many:
        severity = "ERROR"
    return Verdict(
        name=rule.name,
        action=rule.action,
        passed=n == 0,
        severity=severity,
        failing_rows=n,
        description=rule.description,
        sample=stats["sample"],
        detail={"batch_rows": batch_rows, "kind": rule.kind},
        scope="day",
        fail_above=rule.fail_above,
        **by_day,
    )
