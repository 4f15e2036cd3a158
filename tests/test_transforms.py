"""Pure transforms on tiny DataFrames: what Silver keeps, drops and quarantines, and why."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pytest

from spark_jobs import silver
from spark_jobs.bronze import extract_source_table
from spark_jobs.session import releases_checkpoints
from spark_jobs.storage import (
    LandingZone,
    _line_reader,
    as_small,
    backlog_predicate,
    commit_of,
    day_of_object,
    day_predicates,
    local_rows,
    read_landed,
    split_lines,
    unplaced_predicate,
)
from spark_jobs.window import DayWindow
from tests.builders import spark_jobs_in

D1 = date(2026, 5, 1)
NOW = datetime(2026, 5, 2, 6, 0)

LINEAGE = "_source string, _ingested_at timestamp, _run_id string"
ORDER_COLS = (
    "order_id int, customer_id int, product_id int, quantity int, amount double, "
    f"status string, order_ts string, updated_at string, _partition_date date, {LINEAGE}"
)
LINE_COLS = (
    "_partition_date date, _source_file string, _landed_at timestamp, _line_number long, "
    f"raw_line string, _raw_bytes binary, {LINEAGE}"
)

# Spark and Dagster in this process only: no servers, no dbt (make test-fast).
pytestmark = pytest.mark.fast


def orders(spark, rows):
    full = [(*r, D1, "db.orders", NOW, "r") for r in rows]
    return spark.createDataFrame(full, ORDER_COLS)


def lines(spark, raw_lines, day=D1, file="f.jsonl", landed=NOW):
    rows = [
        (day, file, landed, i + 1, line, None, "landing", NOW, "r")
        for i, line in enumerate(raw_lines)
    ]
    return spark.createDataFrame(rows, LINE_COLS)


@pytest.fixture(scope="module")
def refs(spark):
    customers = spark.createDataFrame([(1,), (2,)], "customer_id long")
    products = spark.createDataFrame([(10,), (11,)], "product_id long")
    return customers, products


def test_orders_keep_the_latest_version_and_count_the_rest_as_duplicates(spark, refs):
    bronze = orders(
        spark,
        [
            (1, 1, 10, 2, 20.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (1, 1, 10, 2, 20.00, "shipped", "2026-05-01 08:00:00", "2026-05-01 17:30:00"),
            (2, 2, 11, 1, 5.50, "placed", "2026-05-01 09:00:00", "2026-05-01 09:00:00"),
        ],
    )
    split = silver.clean_orders(bronze, *refs, run_id="r")
    kept = {r.order_id: r.status for r in split.valid.collect()}
    assert kept == {1: "shipped", 2: "placed"}
    assert split.duplicates.count() == 1
    assert split.quarantined.count() == 0


def test_bad_orders_are_quarantined_with_exactly_the_rule_they_break(spark, refs):
    bronze = orders(
        spark,
        [
            (1, 1, 10, 1, 10.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (2, 1, 10, 1, -3.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (3, 1, 10, 1, 10.00, "backordered", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (4, None, 10, 1, 10.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (5, 99, 10, 1, 10.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (6, 1, 99, 1, 10.00, "placed", "2026-05-01 08:00:00", "2026-05-01 08:00:00"),
            (7, 1, 10, 0, 10.00, "placed", "not a time", "2026-05-01 08:00:00"),
        ],
    )
    split = silver.clean_orders(bronze, *refs, run_id="r")
    rules = {int(r.record_key): sorted(r.rules) for r in split.quarantined.collect()}
    assert rules == {
        2: ["amount_non_negative"],
        3: ["status_accepted"],
        4: ["customer_id_not_null"],
        5: ["customer_exists"],
        6: ["product_exists"],
        7: ["order_ts_valid", "quantity_positive"],
    }
    assert [r.order_id for r in split.valid.collect()] == [1]
    # The quarantined record is the Bronze row as it was, lineage included.
    record = json.loads(split.quarantined.where("record_key = '2'").first().record)
    assert record["amount"] == -3.0 and record["_source"] == "db.orders"


def event(event_id, etype="view", user=7, ts="2026-05-01T10:00:00.000Z", product=10):
    return json.dumps(
        {
            "event_id": event_id,
            "user_id": user,
            "session_id": "s1",
            "event_type": etype,
            "page_url": f"/products/{product}",
            "timestamp": ts,
            "properties": {"product_id": product, "order_id": None},
        }
    )


def test_clickstream_malformed_lines_are_quarantined_never_dropped(spark):
    raw = [
        event("e1"),
        event("e1"),  # redelivered
        '{"event_id": "e2", "user_id": 7, "event_ty',  # truncated
        "",
        event("e3", etype="hover"),
        event("e4", user=None),
        event("e5", ts="2026-04-29T23:59:59.000Z"),  # late: belongs to its own day
        json.dumps(
            {
                "event_id": "e6",
                "user_id": "seven",
                "event_type": "view",
                "timestamp": "2026-05-01T10:00:00Z",
            }
        ),
    ]
    split = silver.clean_clickstream(lines(spark, raw), None, run_id="r")
    valid = {r.event_id: r for r in split.valid.collect()}
    assert set(valid) == {"e1", "e5"}
    assert valid["e1"].product_id == 10 and valid["e1"].event_hour == 10
    assert valid["e5"].event_date == date(2026, 4, 29) and valid["e5"].ingest_date == D1
    rules = {r.record_key: r.rules for r in split.quarantined.collect()}
    assert rules == {
        "f.jsonl:3": ["malformed_json"],
        "f.jsonl:4": ["malformed_json"],
        "e3": ["event_type_accepted"],
        "e4": ["user_id_not_null"],
        "e6": ["field_types_valid"],  # "seven" is there, but not a long: row dirt
    }
    assert split.schema_broken.count() == 0  # no required field is missing
    assert [r.record_key for r in split.mistyped.collect()] == ["f.jsonl:8"]
    assert [r.field for r in split.new_fields.collect()] == []
    assert split.duplicates.count() == 1
    assert split.valid.count() + split.quarantined.count() + split.duplicates.count() == len(raw)


def test_clickstream_event_seen_on_an_earlier_day_is_a_duplicate(spark):
    earlier = spark.createDataFrame([("e1",)], "event_id string")
    split = silver.clean_clickstream(lines(spark, [event("e1"), event("e2")]), earlier, "r")
    assert [r.event_id for r in split.valid.collect()] == ["e2"]
    assert split.duplicates.count() == 1


def test_clickstream_copies_of_an_event_seen_earlier_are_all_duplicates(spark):
    """Ranked and matched to earlier days in one pass: both copies of e1 are duplicates (one
    of the batch, one of an earlier day), e2 is kept, and a line without an id is never a
    duplicate of another one: it is judged (and quarantined)."""
    earlier = spark.createDataFrame([("e1",)], "event_id string")
    batch = [event("e1"), event("e1"), event("e2"), event(None), event(None)]
    split = silver.clean_clickstream(lines(spark, batch), earlier, "r")
    assert [r.event_id for r in split.valid.collect()] == ["e2"]
    assert sorted(r.event_id for r in split.duplicates.collect()) == ["e1", "e1"]
    assert split.quarantined.count() == 2


def test_inventory_redelivered_offsets_are_duplicates_and_stock_is_end_of_day(spark):
    def inv(offset, change, level, ts, reason="sale"):
        return json.dumps(
            {
                "topic": "inventory-events",
                "partition": 0,
                "offset": offset,
                "key": "10",
                "event_id": f"i{offset}",
                "product_id": 10,
                "warehouse_id": "wh-1",
                "change": change,
                "stock_level": level,
                "reason": reason,
                "event_ts": ts,
            }
        )

    raw = [
        inv(1, 50, 50, "2026-05-01T00:00:00Z", "restock"),
        inv(2, -3, 47, "2026-05-01T09:00:00Z"),
        inv(2, -3, 47, "2026-05-01T09:00:00Z"),  # redelivered
        inv(3, -2, 45, "2026-05-01T12:00:00Z"),
        inv(4, -1, -1, "2026-05-01T13:00:00Z").replace('"product_id": 10', '"product_id": 12'),
    ]
    products = spark.createDataFrame([(10,), (12,)], "product_id long")
    split = silver.clean_inventory_events(lines(spark, raw), products, "r")
    assert split.duplicates.count() == 1
    assert [r.rules for r in split.quarantined.collect()] == [["stock_level_non_negative"]]
    stock = silver.daily_stock(split.valid, "r").collect()
    assert [(r.product_id, r.stock_level, r.units_sold, r.units_received) for r in stock] == [
        (10, 45, 5, 50)
    ]


def test_jdbc_predicates_come_from_dates_one_per_day():
    window = DayWindow(date(2026, 1, 30), date(2026, 2, 2))
    assert day_predicates(window) == [
        "updated_at >= '2026-01-30 00:00:00' AND updated_at < '2026-01-31 00:00:00'",
        "updated_at >= '2026-01-31 00:00:00' AND updated_at < '2026-02-01 00:00:00'",
        "updated_at >= '2026-02-01 00:00:00' AND updated_at < '2026-02-02 00:00:00'",
    ]
    with pytest.raises(ValueError):
        day_predicates(window, column="updated_at; drop table orders")
    # SQLite keeps time as text: text that is no timestamp is left to the unplaced predicate,
    # so each row is read by exactly one predicate.
    assert day_predicates(DayWindow.of_day(date(2026, 1, 30)), dialect="sqlite") == [
        "datetime(updated_at) IS NOT NULL AND "
        "updated_at >= '2026-01-30 00:00:00' AND updated_at < '2026-01-31 00:00:00'"
    ]
    assert unplaced_predicate(dialect="sqlite") == "NOT (datetime(updated_at) IS NOT NULL)"
    assert unplaced_predicate() == "updated_at IS NULL"
    assert backlog_predicate(date(2026, 1, 30), since=date(2026, 1, 28)) == (
        "updated_at IS NOT NULL AND updated_at < '2026-01-30 00:00:00' "
        "AND updated_at >= '2026-01-28 00:00:00'"
    )


# ------------------------------------------------------------------ dirt that used to vanish
def test_orders_without_a_time_or_in_2099_are_quarantined_by_name(spark, refs):
    ts = "2026-05-01 08:00:00"
    bronze = orders(
        spark,
        [
            (1, 1, 10, 1, 10.00, "placed", None, ts),  # would drop out of Gold uncounted
            (2, 1, 10, 1, 10.00, "placed", "2099-05-01 08:00:00", ts),  # a 2099 partition
            (3, 1, 10, 1, 10.00, "placed", ts, None),  # no change time
            (4, 1, 10, 1, 10.00, "placed", ts, "sometime"),  # an unparseable one
            (5, 1, 10, 1, 10.00, "placed", "2026-05-02 20:00:00", ts),  # within a day: skew
        ],
    )
    split = silver.clean_orders(bronze, *refs, run_id="r")
    rules = {int(r.record_key): r.rules for r in split.quarantined.collect()}
    assert rules == {
        1: ["order_ts_not_null"],
        2: ["order_ts_plausible"],
        3: ["updated_at_not_null"],
        4: ["updated_at_valid"],
    }
    assert [r.order_id for r in split.valid.collect()] == [5]


def test_orders_whose_customer_has_not_arrived_are_held_then_final(spark, refs):
    ts = "2026-05-01 08:00:00"
    bronze = orders(spark, [(1, 99, 10, 1, 10.0, "placed", ts, ts)])  # customer 99 unknown
    held = silver.clean_orders(bronze, *refs, "r", silver.Lateness(date(2026, 5, 3), 3))
    assert [r.rules for r in held.quarantined.collect()] == [["awaiting_customer"]]
    late = silver.clean_orders(bronze, *refs, "r", silver.Lateness(date(2026, 5, 5), 3))
    assert [r.rules for r in late.quarantined.collect()] == [["customer_exists"]]


def test_products_without_a_cost_are_quarantined_not_turned_into_null_profit(spark):
    schema = (
        "product_id long, name string, category string, unit_price double, unit_cost double, "
        f"updated_at string, _partition_date date, {LINEAGE}"
    )
    ts = "2026-05-01 08:00:00"
    bronze = spark.createDataFrame(
        [
            (10, "Lamp", "home", 19.99, None, ts, D1, "db.products", NOW, "r"),
            (11, "Book", "books", 12.50, 5.25, ts, D1, "db.products", NOW, "r"),
        ],
        schema,
    )
    split = silver.clean_products(bronze, "r")
    assert [(r.record_key, r.rules) for r in split.quarantined.collect()] == [
        ("10", ["unit_cost_not_null"])
    ]


def test_one_retyped_value_is_row_dirt_and_a_click_from_next_year_is_implausible(spark):
    raw = [
        event("e1"),
        json.dumps({**json.loads(event("e2")), "user_id": "abc"}),
        event("e3", ts="2027-06-05T10:00:00.000Z"),  # 400 days ahead
        event("e4", ts="not a time"),
        event("e5", product=77),  # a product Silver has not seen yet
    ]
    products = spark.createDataFrame([(10,)], "product_id long")
    lateness = silver.Lateness(D1, grace_days=3)
    split = silver.clean_clickstream(lines(spark, raw), None, "r", products, lateness)
    rules = {r.record_key: r.rules for r in split.quarantined.collect()}
    assert rules == {
        "e2": ["field_types_valid"],
        "e3": ["event_ts_plausible"],
        "e4": ["field_types_valid"],  # not "event_ts_not_null": the value is there
        "e5": ["awaiting_product"],
    }
    assert [r.event_id for r in split.valid.collect()] == ["e1"]


def test_inventory_stock_level_many_is_quarantined_not_a_broken_schema(spark):
    line = {
        "topic": "inventory-events",
        "partition": 0,
        "offset": 1,
        "key": "10",
        "event_id": "i1",
        "product_id": 10,
        "warehouse_id": "wh-1",
        "change": -1,
        "stock_level": "many",
        "reason": "sale",
        "event_ts": "2026-05-01T09:00:00Z",
    }
    products = spark.createDataFrame([(10,)], "product_id long")
    split = silver.clean_inventory_events(lines(spark, [json.dumps(line)]), products, "r")
    assert [r.rules for r in split.quarantined.collect()] == [["field_types_valid"]]
    assert split.schema_broken.count() == 0 and split.mistyped.count() == 1


def test_the_first_landed_copy_wins_by_landing_time_not_file_name(spark):
    early = lines(spark, [event("e1", etype="view")], file="part-00000.jsonl")
    late = lines(
        spark,
        [event("e1", etype="add_to_cart")],
        file="inj-a.jsonl",  # sorts first by name, but landed an hour later
        landed=datetime(2026, 5, 2, 7, 0),
    )
    split = silver.clean_clickstream(early.unionByName(late), None, "r")
    assert [(r.event_id, r.event_type) for r in split.valid.collect()] == [("e1", "view")]
    assert split.duplicates.count() == 1


def test_a_byte_order_mark_is_not_part_of_the_first_line_and_bad_utf8_is_kept():
    def split(data: bytes) -> tuple[list, list]:
        text, original = split_lines(data)
        return text.to_pylist(), original.to_pylist()

    text, original = split(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert text == ['{"a": 1}', '{"b": 2}'] and original == [None, None]
    text, original = split(b'{"a": "caf\xe9"}\n{"b": 2}')  # latin-1, not UTF-8
    assert text == ['{"a": "caf\ufffd"}', '{"b": 2}']
    assert original == [b'{"a": "caf\xe9"}', None]  # Bronze keeps the bytes as they were


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"a", b"a\n", b"a\n\n", b"\na\r\nb", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n",
     b"a\xffb\nc\n\xc3\xa9", "caf\u00e9 \u2028 \U0001f600\n".encode()],
)  # fmt: skip
def test_lines_are_split_exactly_as_bytes_split_at_newlines(data):
    """Arrow splits the file; the lines are those of ``bytes.split``, a final newline ending
    the last line rather than starting an empty one, and nothing else is a line break."""
    text, original = split_lines(data)
    expected = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert [t.encode() if o is None else o for t, o in
            zip(text.to_pylist(), original.to_pylist(), strict=True)] == expected  # fmt: skip
    assert text.to_pylist() == [line.decode("utf-8", errors="replace") for line in expected]


def test_the_landing_reader_keeps_every_line_and_the_bytes_of_bad_ones(spark, tmp_path):
    """Through Spark's Python workers, as Bronze reads: a clean file (the fast path, no
    original bytes) and one with an invalid byte (that line keeps its bytes) in one read."""
    (tmp_path / "clean.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": 2}\n')
    (tmp_path / "dirty.jsonl").write_bytes(b'{"c": "caf\xe9"}\n{"d": 4}')
    files = local_rows(
        spark,
        [(D1, 1, str(tmp_path / name)) for name in ("clean.jsonl", "dirty.jsonl")],
        "day date, landed_us long, path string",
    )
    rows = read_landed(files, LandingZone(str(tmp_path)), 2).collect()
    got = sorted((r._source_file.rsplit("/", 1)[1], r._line_number, r.raw_line, r._raw_bytes)
                 for r in rows)  # fmt: skip
    assert got == [
        ("clean.jsonl", 1, '{"a": 1}', None),
        ("clean.jsonl", 2, "", None),
        ("clean.jsonl", 3, '{"b": 2}', None),
        ("dirty.jsonl", 1, '{"c": "caf\ufffd"}', bytearray(b'{"c": "caf\xe9"}')),
        ("dirty.jsonl", 2, '{"d": 4}', None),
    ]


def test_rows_from_the_driver_keep_their_values_types_and_nulls(spark):
    """What Bronze lists its landed files with, in place of ``createDataFrame``: the same
    rows, types and nullable columns, none at all included, made in the JVM (no Python RDD,
    whose worker daemon stayed for the run) from one text however many rows."""
    schema = "day date, landed_us long, path string, version string"
    rows = [(D1, 1, "a/b.jsonl", None), (date(2026, 5, 2), 2**40, 'c\'s "d".jsonl', "v2")]
    made = local_rows(spark, rows, schema)
    assert made.schema == spark.createDataFrame(rows, schema).schema
    assert all(field.nullable for field in made.schema)
    assert [tuple(r) for r in made.collect()] == rows
    assert "ExistingRDD" not in made._jdf.queryExecution().executedPlan().toString()
    empty = local_rows(spark, [], schema)
    assert (empty.schema, empty.count()) == (made.schema, 0)
    many = [(D1, n, f"part-{n}.jsonl", None) for n in range(5000)]
    assert local_rows(spark, many, schema).agg({"landed_us": "sum"}).first()[0] == 12_497_500


def test_a_tables_load_releases_its_checkpoints_and_nothing_else(spark):
    persisted = spark.sparkContext._jsc.getPersistentRDDs
    earlier = spark.range(3).localCheckpoint()  # not the load's: stays

    @releases_checkpoints
    def load(spark, n, fail=False):
        counted = spark.range(n).localCheckpoint().count()
        if fail:
            raise RuntimeError("the load's own error")
        return counted

    before = set(persisted().keys())
    assert load(spark, 5) == 5
    assert set(persisted().keys()) == before
    with pytest.raises(RuntimeError, match="the load's own error"):
        load(spark, 5, fail=True)
    assert set(persisted().keys()) == before
    assert earlier.count() == 3
    # The loads that checkpoint their rows (Silver's ranking, Bronze's kept versions).
    released = releases_checkpoints(len).__code__
    assert silver.run_table.__code__ is released and extract_source_table.__code__ is released


def test_a_failed_extraction_leaves_no_rows_cached(spark, settings, monkeypatch, tmp_path):
    """Bronze caches the source rows it plans to read once: an extraction that fails after
    that (here in planning the split against Bronze) releases them with its error."""
    from spark_jobs import bronze
    from tests.builders import write_source_db

    own = settings.with_overrides(source_url=f"jdbc:sqlite:{tmp_path / 'source.db'}")
    write_source_db(own, {})  # its own: the tests' shared database is left as it is
    calls, reads = [], []

    def fails_after_the_read(*_):
        calls.append(1)
        raise RuntimeError("planning failed")

    def read(*args):
        reads.append(1)
        return read_source_rows(*args)

    read_source_rows = bronze.storage.read_source_rows
    monkeypatch.setattr(bronze, "_bronze_if_exists", fails_after_the_read)
    monkeypatch.setattr(bronze.storage, "read_source_rows", read)
    cached = spark._jsparkSession.sharedState().cacheManager()
    spark.catalog.clearCache()  # whatever earlier tests of this process left
    with pytest.raises(RuntimeError, match="planning failed"):
        extract_source_table(spark, own, "products", DayWindow.of_day(D1), "r")
    assert (len(calls), len(reads)) == (1, 1)  # it failed after the read was cached
    assert cached.isEmpty()


def test_an_extraction_reports_what_it_caught_up_and_kept_day_after_day(
    spark, settings, tmp_path, monkeypatch
):
    """The figures a Bronze extraction reports (counted as its write reads the rows, not by
    actions of their own): rows changed before the window and rows without a change time it
    took, and on a rerun the versions Bronze keeps that the source no longer returns."""
    from spark_jobs import bronze
    from tests.builders import write_source_db

    monkeypatch.setattr(bronze, "counted_figures", lambda *_: pytest.fail("counted again"))

    own = settings.with_overrides(source_url=f"jdbc:sqlite:{tmp_path / 'source.db'}")
    day1, day2 = date(2032, 4, 1), date(2032, 4, 2)  # days no other test extracts

    def customers(c1_changed: str) -> None:
        made = "2032-01-01 00:00:00"
        write_source_db(
            own,
            {
                "customers": [
                    (7_700_001, "Ada", "a@example.com", "consumer", "east", made, c1_changed),
                    (7_700_002, "Bo", "b@example.com", "consumer", "east", made, None),
                    (
                        7_700_003,
                        "Cy",
                        "c@example.com",
                        "consumer",
                        "east",
                        made,
                        "2032-03-31 10:00:00",
                    ),
                ]
            },
        )

    def extract(day: date):
        result = extract_source_table(spark, own, "customers", DayWindow.of_day(day), "r")
        figures = {k: v for k, v in result.detail.items() if k != "extraction"}
        return result.rows_per_day, figures

    def figures(caught_up: int, unplaced: int, kept: int) -> dict[str, int]:
        return {
            "rows_changed_before_window": caught_up,
            "rows_without_change_time": unplaced,
            "versions_kept_from_earlier_extraction": kept,
        }

    try:
        customers("2032-04-01 08:00:00")
        assert extract(day1) == ({"2032-04-01": 3}, figures(1, 1, 0))
        customers("2032-04-02 09:00:00")  # Ada changed again: the day-1 version is gone
        assert extract(day1) == ({"2032-04-01": 3}, figures(1, 1, 1))  # Bronze keeps it
        assert extract(day1) == ({"2032-04-01": 3}, figures(1, 1, 1))  # and no more
        assert extract(day2) == ({"2032-04-02": 1}, figures(0, 0, 0))  # the new version
    finally:
        spark.sql("DELETE FROM lakehouse.bronze.customers WHERE _partition_date >= '2032-01-01'")


def test_a_held_rows_age_is_measured_to_the_newest_day_bronze_holds(spark):
    """``held.as_of``: the newest day of Bronze, or the window's last when none is later (a
    day's run: told from the table's files, without a Spark job)."""
    from uuid import uuid4

    from spark_jobs import held

    name = f"lakehouse.bronze.as_of_test_{uuid4().hex[:8]}"
    d1, d2, d4 = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 4)
    spark.createDataFrame([(d1, "a"), (d2, "b")], "_partition_date date, v string").writeTo(
        name
    ).partitionedBy("_partition_date").create()
    try:
        group = f"as-of-test-{uuid4().hex}"
        spark.sparkContext.setJobGroup(group, "jobs counted by the test")
        newest = held.as_of(spark, name, DayWindow.of_day(d2))
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        assert newest == d2
        assert spark_jobs_in(spark, group) == []
        assert held.as_of(spark, name, DayWindow.of_day(d1)) == d2  # a later day is there
        assert held.as_of(spark, name, DayWindow.of_day(d4)) == d4
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")


def test_the_landing_reader_hands_a_big_file_on_in_numbered_slices(tmp_path):
    """A file's lines leave the reader in batches of at most ``batch_lines`` (a file may hold
    more text than one Arrow ``string`` array), numbered on from slice to slice, in the
    types Spark's schema names."""
    (tmp_path / "big.jsonl").write_bytes(b"l1\nl2\nl\xff3\nl4\nl5\n")
    files = pa.RecordBatch.from_pydict(
        {"day": [D1], "landed_us": [1], "path": [str(tmp_path / "big.jsonl")]}
    )
    batches = list(_line_reader(LandingZone(str(tmp_path)), batch_lines=2)([files]))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    rows = pa.Table.from_batches(batches).to_pylist()
    assert [(r["_line_number"], r["raw_line"], r["_raw_bytes"]) for r in rows] == [
        (1, "l1", None), (2, "l2", None), (3, "l\ufffd3", b"l\xff3"), (4, "l4", None),
        (5, "l5", None),
    ]  # fmt: skip
    assert batches[0].schema.field("raw_line").type == pa.string()
    assert batches[0].schema.field("_raw_bytes").type == pa.binary()


def test_a_slice_past_2_gib_of_text_still_fits_a_spark_string_batch():
    """The reader's slices of a file with more than 2 GiB of text (the buffer is calloc'd:
    its pages are never touched, so this allocates next to nothing)."""
    big = np.zeros(2**31 + 100, dtype=np.uint8)
    offsets = np.array([0, 10, 2**31 + 10, 2**31 + 20], dtype=np.int64)
    values = pa.Array.from_buffers(
        pa.large_string(), 3, [None, pa.py_buffer(offsets), pa.py_buffer(big)]
    )
    with pytest.raises(pa.ArrowInvalid):
        values.slice(2, 1).cast(pa.string())  # what a plain cast of the slice does
    assert as_small(values.slice(2, 1), pa.string()).to_pylist() == ["\0" * 10]


def test_invalid_utf8_lines_are_quarantined_by_name(spark):
    rows = [
        (D1, "f.jsonl", NOW, 1, event("e1").replace("s1", "s\ufffd"), b"raw", "l", NOW, "r"),
        (D1, "f.jsonl", NOW, 2, event("e2"), None, "l", NOW, "r"),
    ]
    split = silver.clean_clickstream(spark.createDataFrame(rows, LINE_COLS), None, "r")
    assert [(r.record_key, r.rules) for r in split.quarantined.collect()] == [
        ("e1", ["invalid_utf8"])
    ]


def test_only_a_days_own_folder_is_landing_data():
    # What Bronze reads (one day's folder, not below it), the sensors and the stream take too.
    assert day_of_object("inventory/2026-03-11/part-1.jsonl") == date(2026, 3, 11)
    assert day_of_object("inventory/2026-03-11/retry/part-1.jsonl") is None
    assert day_of_object("inventory/2026-03-11/part-1.json") is None
    assert day_of_object("inventory/latest/part-1.jsonl") is None
    assert day_of_object("invoices/2026-03-11/part-1.jsonl") is None


def test_a_missing_tables_commit_is_none_not_an_error(spark):
    # The inventory stream judges each micro-batch against silver.products' commit, None
    # before the first daily run made it: the lookup raised instead (the JDBC catalog without
    # view support answers a missing table's `.refs` with UnsupportedOperationException),
    # so a stream turned on before any daily run failed every micro-batch.
    spark.sql("CREATE NAMESPACE IF NOT EXISTS lakehouse.silver")
    assert commit_of(spark, "lakehouse.silver.no_such_table") is None
    assert commit_of(spark, "lakehouse.no_such_namespace.no_such_table") is None


def test_an_event_tables_writer_adds_released_rows_only_where_the_runner_counted_some(spark):
    """An event table's writer replaces the window's days and adds rows of other days
    (released from hold) to theirs; told there are none (the runner's tally counted none
    outside the window), it runs no query for them. A writer of days of another column
    than the table's batch day is refused: the tally counts by the batch day."""
    import dataclasses
    from uuid import uuid4

    from spark_jobs.silver import clickstream
    from spark_jobs.silver.common import replace

    with pytest.raises(ValueError, match="batch_day 'ingest_date'"):
        dataclasses.replace(clickstream.TABLE, write=replace("event_date", ("event_id",)))
    window = DayWindow.of_day(date(2026, 5, 2))
    rows = spark.createDataFrame(
        [(date(2026, 5, 2), 1), (date(2026, 5, 1), 2)], "d date, k long"
    )  # the second released from hold: a day before the window
    write = replace("d", ("k",))
    base = f"lakehouse.silver.replace_test_{uuid4().hex[:8]}"
    told = {True: base, False: f"{base}_none"}  # by what the writer is told
    try:
        for outside, name in told.items():
            write(rows, name, window, outside=outside)
        assert sorted(r.k for r in spark.table(told[True]).collect()) == [1, 2]
        assert [r.k for r in spark.table(told[False]).collect()] == [1]
        write(rows, told[True], window, outside=True)  # a rerun adds none twice
        assert sorted(r.k for r in spark.table(told[True]).collect()) == [1, 2]
    finally:
        for name in told.values():
            spark.sql(f"DROP TABLE IF EXISTS {name} PURGE")
