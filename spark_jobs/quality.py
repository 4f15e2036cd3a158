"""Row-level rules: a row that breaks any rule goes to quarantine with the names of the rules.

A rule is a name and a condition that is true when the row *fails*. Conditions that would be
NULL count as passing, so each rule must say how it treats NULL (the ``*_not_null`` rules do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RULES_COLUMN = "_rules_failed"


@dataclass(frozen=True)
class Rule:
    name: str
    fails: Column
    description: str = ""


@dataclass(frozen=True)
class Split:
    """What validation made of a batch: kept rows, quarantined rows, duplicates dropped."""

    valid: DataFrame
    quarantined: DataFrame
    duplicates: DataFrame


def not_null(column: str) -> Rule:
    from pyspark.sql import functions as F

    return Rule(f"{column}_not_null", F.col(column).isNull(), f"{column} is required")


def accepted_values(column: str, values: Sequence[str]) -> Rule:
    from pyspark.sql import functions as F

    return Rule(
        f"{column}_accepted",
        F.col(column).isNotNull() & ~F.col(column).isin(list(values)),
        f"{column} in {sorted(values)}",
    )


def at_least(column: str, minimum: float, strict: bool = False) -> Rule:
    from pyspark.sql import functions as F

    fails = F.col(column) <= minimum if strict else F.col(column) < minimum
    word = "positive" if strict and minimum == 0 else "non_negative" if minimum == 0 else "min"
    return Rule(f"{column}_{word}", fails, f"{column} {'>' if strict else '>='} {minimum}")


def parses(raw: str, typed: str, name: str | None = None) -> Rule:
    """The raw value is present but did not convert to its type (e.g. a bad timestamp)."""
    from pyspark.sql import functions as F

    return Rule(
        name or f"{typed}_valid",
        F.col(raw).isNotNull() & F.col(typed).isNull(),
        f"{raw} converts to its type",
    )


def apply_rules(df: DataFrame, rules: Sequence[Rule]) -> tuple[DataFrame, DataFrame]:
    """Split into (rows that pass every rule, rows that fail one or more with the rule names)."""
    from pyspark.sql import functions as F

    failed = F.array(*[F.when(F.coalesce(r.fails, F.lit(False)), F.lit(r.name)) for r in rules])
    marked = df.withColumn(RULES_COLUMN, F.filter(failed, lambda name: name.isNotNull()))
    valid = marked.where(F.size(RULES_COLUMN) == 0).drop(RULES_COLUMN)
    bad = marked.where(F.size(RULES_COLUMN) > 0)
    return valid, bad


def keep_first(
    df: DataFrame, keys: Sequence[str], order: Sequence[Column]
) -> tuple[DataFrame, DataFrame]:
    """One row per key (the first by ``order``); rows with a NULL key are all kept.

    Returns (kept, dropped duplicates).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    has_key = F.lit(True)
    for key in keys:
        has_key = has_key & F.col(key).isNotNull()
    ranked = df.withColumn(
        "_rank",
        F.when(has_key, F.row_number().over(Window.partitionBy(*keys).orderBy(*order))).otherwise(
            1
        ),
    )
    kept = ranked.where(F.col("_rank") == 1).drop("_rank")
    dropped = ranked.where(F.col("_rank") > 1).drop("_rank")
    return kept, dropped


def rule_counts(quarantined: DataFrame, column: str = "rules") -> dict[str, int]:
    """How many quarantined rows broke each rule (a row may break several)."""
    from pyspark.sql import functions as F

    exploded = quarantined.select(F.explode(column).alias("rule"))
    return {r["rule"]: r["count"] for r in exploded.groupBy("rule").count().collect()}
