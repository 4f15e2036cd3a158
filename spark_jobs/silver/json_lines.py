"""Landing-feed lines as JSON: parsed once as text, each field converted on its own, and the
rules every feed shares (valid UTF-8, a JSON object, values of their declared types)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs.quality import RULES_COLUMN, Rule
from spark_jobs.silver.common import bronze_record

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def line_key() -> Column:
    """Where a line came from, for lines without a key of their own."""
    return F.concat_ws(":", "_bronze._source_file", "_bronze._line_number")


def parse_json(df: DataFrame, required: dict[str, str]) -> DataFrame:
    """Read ``raw_line`` as a JSON object of text values, and say what is wrong with its shape.

    Every value is kept as text (``_raw``) and converted field by field later, so one value of
    another type (``"user_id": "abc"``) is that row's dirt, not a broken batch.
    ``_fields``: the keys the line really has (NULL when the line is not a JSON object);
    ``_schema_broken``: a required field is absent.
    """
    parsed = (
        bronze_record(df)
        .withColumn("_raw", F.from_json(F.col("raw_line"), "map<string,string>"))
        .withColumn("_fields", F.map_keys("_raw"))
    )
    # array_except, not a filter with a lambda: a higher-order function has no generated code,
    # and one took the whole projection (every field's conversion) out of Spark's generated
    # code for the stage.
    missing = F.array_except(F.array(*[F.lit(f) for f in required]), F.col("_fields"))
    return parsed.withColumns(
        {
            "_missing_fields": missing,
            "_schema_broken": F.col("_fields").isNotNull() & (F.size(missing) > 0),
        }
    )


def typed_lines(
    bronze: DataFrame,
    fields: dict[str, str],
    required: dict[str, str],
    renamed: dict[str, str] | None = None,
) -> DataFrame:
    """Each line parsed (``parse_json``) and its fields converted (``json_columns``): what
    deduplication ranks and the schema report reads. Rank it (``quality.rank_first``,
    checkpointed) before anything else reads it, so the JSON is parsed once (each extra parse
    was about 10 s at 1 M events)."""
    parsed = parse_json(bronze, required)
    return parsed.select(
        "_bronze", "_fields", "_schema_broken", *json_columns(fields, renamed or {})
    )


def without_spent_text(judged: DataFrame, known: list[str], keep_lines: bool = False) -> DataFrame:
    """``typed_lines``' rows, once judged (``quality.mark_rules``), without the text no later
    step reads: each field's text (``<name>_raw``, read only by the rules), and the raw line
    of a row that is kept and has no field beyond the ``known`` ones. A quarantined row keeps
    its line (the quarantine holds it), and so does a row with a new field (schema evolution
    reads the field from it). At 1 M events the texts were half the bytes the ranking
    shuffled and checkpointed. ``keep_lines``: every row keeps its line, for a caller that
    may still quarantine kept rows and has no Bronze table that holds them (the stream)."""
    without_texts = judged.drop(*[c for c in judged.columns if c.endswith("_raw")])
    if keep_lines:
        return without_texts
    new_field = F.size(F.array_except("_fields", F.array(*[F.lit(k) for k in known]))) > 0
    needed = (F.size(RULES_COLUMN) > 0) | F.col("_fields").isNull() | new_field
    line = F.when(needed, F.col("_bronze.raw_line"))
    return without_texts.withColumn("_bronze", F.col("_bronze").withField("raw_line", line))


def convert(raw: Column, kind: str) -> Column:
    """Text to its declared type; NULL when it does not convert (``"7.5"`` is not a long)."""
    if kind in ("int", "long"):
        return F.when(raw.rlike(r"^\s*-?[0-9]+\s*$"), F.trim(raw).cast(kind))
    if kind == "timestamp":
        return F.to_timestamp(raw)
    return raw if kind == "string" else raw.cast(kind)


def json_columns(fields: dict[str, str], renamed: dict[str, str]) -> list[Column]:
    """Each field as ``<name>_raw`` (its text) and ``<name>`` (converted), plus ``_mistyped``:
    a value is there but does not convert to its type."""
    out, mistyped = [], F.lit(False)
    for field_name, kind in fields.items():
        name = renamed.get(field_name, field_name)
        raw = F.col("_raw").getItem(field_name)
        out += [raw.alias(f"{name}_raw"), convert(raw, kind).alias(name)]
        if kind != "string":
            mistyped = mistyped | (raw.isNotNull() & convert(raw, kind).isNull())
    return [*out, mistyped.alias("_mistyped")]


def types_rule(fields: dict[str, str]) -> Rule:
    typed = [f"{k} {v}" for k, v in fields.items() if v != "string"]
    return Rule(
        "field_types_valid",
        "parses",
        lambda: F.col("_mistyped"),
        "drop",
        "every value converts to its type: " + ", ".join(typed),
    )


MALFORMED_JSON = Rule(
    "malformed_json",
    "parses",
    lambda: F.col("_fields").isNull(),
    "drop",
    "the line is a JSON object",
)
INVALID_UTF8 = Rule(
    "invalid_utf8",
    "parses",
    lambda: F.col("_bronze._raw_bytes").isNotNull(),
    "drop",
    "the line is valid UTF-8 (Bronze keeps its original bytes)",
)


def json_rules(fields: dict[str, str], field_rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Field rules apply to lines that are JSON; a malformed line breaks only that rule."""
    on_json = (types_rule(fields), *field_rules)
    return (
        INVALID_UTF8,
        MALFORMED_JSON,
        *[r.where(lambda: F.col("_fields").isNotNull()) for r in on_json],
    )


def new_fields(parsed: DataFrame, known: list[str]) -> DataFrame:
    """One row per (field, line) for each field a line has beyond the ``known`` ones."""
    return parsed.select(
        F.explode(F.array_except("_fields", F.array(*[F.lit(k) for k in known]))).alias("field"),
        line_key().alias("record_key"),
    )


def schema_report(typed: DataFrame, known: list[str]) -> dict:
    """What the schema and new-field checks judge, as ``Split`` fields, from ``typed_lines``'
    rows (ranked)."""
    return {
        "schema_broken": typed.where("_schema_broken").select(line_key().alias("record_key")),
        "new_fields": new_fields(typed, known),
        "mistyped": typed.where("_mistyped").select(line_key().alias("record_key")),
    }


def evolve(rows: DataFrame, fields: list[str], raw_line: str) -> DataFrame:
    """Add new top-level JSON fields as string columns (additive evolution, opt-in)."""
    added = [f for f in fields if FIELD_NAME.match(f) and f not in rows.columns]
    return rows.withColumns({f: F.get_json_object(F.col(raw_line), f"$.{f}") for f in added})
