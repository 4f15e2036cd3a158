"""Pure transforms on tiny DataFrames: what Silver keeps, drops and quarantines, and why."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from spark_jobs import silver
from spark_jobs.storage import day_predicates
from spark_jobs.window import DayWindow

D1 = date(2026, 5, 1)
NOW = datetime(2026, 5, 2, 6, 0)

LINEAGE = "_source string, _ingested_at timestamp, _run_id string"
ORDER_COLS = (
    "order_id int, customer_id int, product_id int, quantity int, amount double, "
    f"status string, order_ts string, updated_at string, _partition_date date, {LINEAGE}"
)
LINE_COLS = (
    f"_partition_date date, _source_file string, _line_number long, raw_line string, {LINEAGE}"
)


def orders(spark, rows):
    full = [(*r, D1, "db.orders", NOW, "r") for r in rows]
    return spark.createDataFrame(full, ORDER_COLS)


def lines(spark, raw_lines, day=D1, file="f.jsonl"):
    rows = [(day, file, i + 1, line, "landing", NOW, "r") for i, line in enumerate(raw_lines)]
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
        "e6": ["user_id_not_null"],  # retyped: it also fails the schema check, below
    }
    assert [r.record_key for r in split.schema_broken.collect()] == ["f.jsonl:8"]
    assert [r.field for r in split.new_fields.collect()] == []
    assert split.duplicates.count() == 1
    assert split.valid.count() + split.quarantined.count() + split.duplicates.count() == len(raw)


def test_clickstream_event_seen_on_an_earlier_day_is_a_duplicate(spark):
    earlier = spark.createDataFrame([("e1",)], "event_id string")
    split = silver.clean_clickstream(lines(spark, [event("e1"), event("e2")]), earlier, "r")
    assert [r.event_id for r in split.valid.collect()] == ["e2"]
    assert split.duplicates.count() == 1


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
