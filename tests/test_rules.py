"""Every kind of rule and check, on tiny dirty data, with exact counts and verdicts."""

from __future__ import annotations

from datetime import datetime

import pytest
from pyspark.sql import functions as F

from spark_jobs import quality as q
from spark_jobs.silver import TABLES, checks

# Spark and Dagster in this process only: no servers, no dbt (make test-fast).
pytestmark = pytest.mark.fast


def frame(spark, rows, schema="id long, status string, amount double, day string"):
    return spark.createDataFrame(rows, schema)


def flagged(spark, rules, rows):
    kept, bad = q.apply_rules(frame(spark, rows), rules)
    stats = q.rule_stats(bad.withColumnRenamed(q.RULES_COLUMN, "rules"), "rules", "id", "day")
    stats |= q.rule_stats(kept, q.WARNINGS_COLUMN, "id", "day")
    batch = len(rows)
    return kept, bad, {r.name: q.judge_rule(r, stats.get(r.name), batch) for r in rules}


ROWS = [
    (1, "placed", 10.0, "d1"),
    (2, None, 5.0, "d1"),
    (3, "lost", 7.0, "d1"),
    (4, "placed", -1.0, "d2"),
    (5, "placed", 2000.0, "d2"),
    (None, "placed", 1.0, "d2"),
]


def test_not_null_accepted_values_and_between_count_exactly(spark):
    rules = [
        q.not_null("id", action="fail"),
        q.not_null("status"),
        q.accepted_values("status", ["placed", "shipped"]),
        q.between("amount", 0, name="amount_non_negative"),
        q.between("amount", high=1000, name="amount_plausible", action="warn"),
    ]
    kept, bad, v = flagged(spark, rules, ROWS)
    assert sorted(r.id for r in kept.collect()) == [1, 5]  # warn keeps row 5
    assert bad.count() == 4
    assert (v["id_not_null"].failing_rows, v["id_not_null"].status) == (1, "failed")
    assert (v["status_not_null"].failing_rows, v["status_not_null"].status) == (1, "warned")
    assert v["status_accepted"].failing_rows == 1 and v["status_accepted"].sample == ["3"]
    assert v["amount_non_negative"].per_day == {"d2": 1}
    assert (v["amount_plausible"].failing_rows, v["amount_plausible"].status) == (1, "warned")


def test_a_drop_rule_escalates_when_most_of_the_batch_breaks_it(spark):
    rules = [q.accepted_values("status", ["shipped"])]
    _, _, v = flagged(spark, rules, ROWS)
    assert v["status_accepted"].failing_rows == 5  # of 6: an outage upstream, not dirt
    assert v["status_accepted"].status == "failed"
    assert v["status_accepted"].severity == "ERROR"


def test_each_day_of_a_range_is_judged_on_its_own_rows(spark):
    # Two of six rows break the rule: a third of the window (dirt), but all of day d1's rows
    # (an outage that day). A range run must show d1 failed and d2 passed, not one verdict.
    rows = [(1, "lost", 1.0, "d1"), (2, "lost", 1.0, "d1")]
    rows += [(n, "placed", 1.0, "d2") for n in range(3, 7)]
    _, _, v = flagged(spark, [q.accepted_values("status", ["placed"])], rows)
    window = v["status_accepted"]
    assert (window.failing_rows, window.status) == (2, "warned")
    d1, d2 = window.on_day("d1", batch_rows=2), window.on_day("d2", batch_rows=4)
    assert (d1.failing_rows, d1.status, sorted(d1.sample)) == (2, "failed", ["1", "2"])
    assert (d2.failing_rows, d2.status, d2.sample) == (0, "passed", [])
    assert d1.detail["batch_rows"] == 2


def test_a_whole_batch_check_holds_for_each_of_its_days(spark):
    check = checks.unique(["id"])
    verdict = check.judge(frame(spark, [(1, "a", 1.0, "d1"), (1, "b", 1.0, "d2")]))
    for day in ("d1", "d2"):
        judged = verdict.on_day(day, batch_rows=1)
        assert (judged.failing_rows, judged.status) == (2, "failed")
        assert judged.detail["judged_on"] == "window"


def test_a_missing_reference_is_held_then_final_after_the_grace_period(spark):
    rows = (
        spark.createDataFrame(
            [(1, 10, False), (2, 99, False), (3, None, False), (4, 99, True)],
            f"id long, customer_id long, {q.PAST_GRACE} boolean",
        )
        .join(
            spark.createDataFrame([(10, True)], "cid long, _found boolean"),
            F.col("customer_id") == F.col("cid"),
            "left",
        )
        .withColumn("day", F.lit("d1"))
    )
    awaiting, final = q.references("customer_id", "_found", "silver.customers", "customer")
    assert (awaiting.name, final.name) == ("awaiting_customer", "customer_exists")
    assert not awaiting.blocking and final.blocking
    kept, bad = q.apply_rules(rows, [awaiting, final])
    assert sorted(r.id for r in kept.collect()) == [1, 3]  # a NULL key is not_null's business
    assert {r.id: r[q.RULES_COLUMN] for r in bad.collect()} == {
        2: ["awaiting_customer"],  # within the grace period: held
        4: ["customer_exists"],  # past it: a failure
    }
    stats = q.rule_stats(bad.withColumnRenamed(q.RULES_COLUMN, "rules"), "rules", "id", "day")
    held = q.judge_rule(awaiting, stats.get("awaiting_customer"), 4)
    failed = q.judge_rule(final, stats.get("customer_exists"), 4)
    # Waiting is not failing: the held row is counted, the check passes.
    assert (held.passed, held.detail["held_rows"], held.sample) == (True, 1, ["2"])
    assert (failed.passed, failed.failing_rows, failed.status) == (False, 1, "warned")


def test_plausible_times_lie_near_the_landing_day(spark):
    rows = spark.createDataFrame(
        [
            (1, "2026-05-01 10:00:00"),
            (2, "2026-05-02 23:00:00"),  # within a day after the day's end: clock skew
            (3, "2099-05-01 10:00:00"),  # a typo: not a new partition
            (4, "2026-04-20 10:00:00"),  # older than the look-back
            (5, None),
        ],
        "id long, ts string",
    ).selectExpr("id", "to_timestamp(ts) as ts", "date'2026-05-01' as day")
    rule = q.within_days("ts", "day", before_days=7)
    kept, bad = q.apply_rules(rows, [rule])
    assert sorted(r.id for r in bad.collect()) == [3, 4]
    no_floor = q.within_days("ts", "day")  # orders: placed long ago, changed today, is fine
    assert sorted(r.id for r in q.apply_rules(rows, [no_floor])[1].collect()) == [3]


def test_not_null_on_the_raw_value_leaves_unparseable_values_to_parses(spark):
    rows = spark.createDataFrame(
        [(1, "2026-05-01 10:00:00"), (2, None), (3, "yesterday-ish")], "id long, ts_raw string"
    ).selectExpr("id", "ts_raw", "to_timestamp(ts_raw) as ts")
    rules = [q.not_null("ts", raw="ts_raw"), q.parses("ts_raw", "ts")]
    _, bad = q.apply_rules(rows, rules)
    assert {r.id: r[q.RULES_COLUMN] for r in bad.collect()} == {
        2: ["ts_not_null"],
        3: ["ts_valid"],
    }


def test_unique_counts_every_row_of_a_repeated_key(spark):
    df = spark.createDataFrame(
        [(1, "a"), (1, "b"), (1, "c"), (2, "a"), (3, "a"), (3, "b")], "k long, v string"
    )
    single = checks.unique(["k"]).judge(df)
    assert (single.failing_rows, single.status, sorted(single.sample)) == (5, "failed", ["1", "3"])
    pair = checks.unique(["k", "v"]).judge(df)
    assert pair.passed


def test_row_count_band_compares_with_recent_days():
    check = checks.row_count_band(low=0.5, high=2.0, lookback_days=3)
    history = {"2026-01-01": 100, "2026-01-02": 120, "2026-01-03": 80}
    normal = check.judge({"2026-01-04": 90}, history)
    assert normal.passed and normal.detail["ratio_to_recent_mean"] == {"2026-01-04": 0.9}
    low = check.judge({"2026-01-04": 40}, history)
    assert (low.failing_rows, low.status, low.sample) == (40, "warned", ["2026-01-04"])
    first_day = check.judge({"2026-01-01": 5}, {"2026-01-01": 5})
    assert first_day.passed  # nothing to compare with yet


def test_freshness_wants_the_day_covered_to_its_end():
    check = checks.freshness("updated_at", max_lag_hours=6)
    verdict = check.judge(
        {
            "2026-01-01": datetime(2026, 1, 1, 23, 10),
            "2026-01-02": datetime(2026, 1, 2, 9, 0),  # nothing after 9:00: a cut-off extract
            "2026-01-03": None,  # Bronze had rows, none survived
        },
    )
    assert (verdict.failing_rows, verdict.sample) == (2, ["2026-01-02", "2026-01-03"])
    first, second = verdict.on_day("2026-01-01", 10), verdict.on_day("2026-01-02", 10)
    assert first.passed and first.detail["latest"] == "2026-01-01T23:10:00"
    assert (second.failing_rows, second.sample, second.status) == (1, ["2026-01-02"], "warned")


def test_every_silver_table_declares_schema_reconciliation_and_uniqueness():
    for name, table in TABLES.items():
        kinds = {c.kind for c in table.quality.checks}
        assert {"schema", "reconciles", "unique"} <= kinds, name
        names = [r.name for r in table.quality.all]
        assert len(names) == len(set(names)), name
        assert any(r.action == "fail" for r in table.quality.all), name
