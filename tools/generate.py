"""Deterministic e-commerce data for the lakehouse's three sources.

    python -m tools.generate --start 2026-01-01 --days 3 --scale small

writes, under ``LAKEHOUSE_HOME``:
- ``source.db``: the operational database (customers, products, orders), current state, as an
  OLTP system holds it: an order updated on a later day shows only its latest version.
- ``landing/clickstream/<day>/part-*.jsonl``: web events, as a log shipper lands them.
- ``landing/inventory/<day>/part-*.jsonl``: inventory events, as a Kafka->S3 sink lands them.
- ``generator_manifest.json``: how many rows and how much injected dirt of each kind per day,
  so tests and the demo can reconcile quarantine counts with what was injected.

Everything is vectorised with numpy and written by polars; the same seed gives the same bytes.
Dirt kinds are drawn from disjoint row sets, so every dirty row breaks exactly one rule.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from spark_jobs.settings import Settings

SEGMENTS = np.array(["consumer", "corporate", "small_business"])
REGIONS = np.array(["north", "south", "east", "west"])
CATEGORIES = np.array(["electronics", "home", "apparel", "beauty", "sports", "books", "toys"])
UPDATED_STATUSES = np.array(["shipped", "delivered", "cancelled", "returned"])
BROWSE_TYPES = np.array(["view", "add_to_cart", "search", "remove_from_cart"])
UNKNOWN_STATUS = "backordered"
UNKNOWN_EVENT_TYPE = "hover"
MISSING_KEY_BASE = 90_000_000
DAY_S = 86_400
LINES_PER_FILE = 250_000


@dataclass(frozen=True)
class Scale:
    customers: int
    products: int
    orders_per_day: int
    events_per_day: int
    warehouses: int


SCALES = {
    "tiny": Scale(customers=40, products=12, orders_per_day=30, events_per_day=300, warehouses=2),
    "small": Scale(2_000, 200, 2_000, 40_000, 3),
    "medium": Scale(20_000, 1_000, 10_000, 200_000, 4),
    "large": Scale(200_000, 5_000, 50_000, 1_000_000, 5),
    # Not in `make benchmark`'s default scales (about 15 minutes more): SCALE=xlarge adds it.
    "xlarge": Scale(1_000_000, 20_000, 200_000, 10_000_000, 8),
}


@dataclass(frozen=True)
class Dirt:
    """Rates of injected dirt, as fractions of the rows of each source."""

    duplicate_events: float = 0.01
    late_events: float = 0.01
    malformed_lines: float = 0.002
    null_required: float = 0.003
    unknown_values: float = 0.003
    negative_amounts: float = 0.003
    missing_references: float = 0.003
    duplicate_deliveries: float = 0.005

    @classmethod
    def none(cls) -> Dirt:
        return cls(**{k: 0.0 for k in asdict(cls())})


@dataclass
class Manifest:
    start: str
    days: int
    scale: str
    seed: int
    per_day: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def add(self, day: date, source: str, counts: dict[str, int]) -> None:
        bucket = self.per_day.setdefault(day.isoformat(), {}).setdefault(source, {})
        for key, value in counts.items():
            bucket[key] = bucket.get(key, 0) + int(value)


def _ts_text(epoch_s: np.ndarray) -> np.ndarray:
    """Epoch seconds -> 'YYYY-MM-DD HH:MM:SS', the way the operational database stores time."""
    iso = np.datetime_as_string(epoch_s.astype("datetime64[s]"), unit="s").astype("U19")
    return np.char.replace(iso, "T", " ")


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _take_disjoint(
    rng: np.random.Generator, n: int, rates: dict[str, float]
) -> dict[str, np.ndarray]:
    """Disjoint random row sets, one per dirt kind, sized by rate (at least one if rate > 0)."""
    order = rng.permutation(n)
    out, at = {}, 0
    for kind, rate in rates.items():
        k = 0 if rate <= 0 else max(1, int(round(n * rate)))
        k = min(k, max(0, n - at))
        out[kind] = np.sort(order[at : at + k])
        at += k
    return out


class Generator:
    def __init__(self, start: date, days: int, scale: str, seed: int, dirt: Dirt):
        self.start, self.days, self.scale_name = start, days, scale
        self.scale = SCALES[scale]
        self.dirt = dirt
        self.rng = np.random.default_rng(seed)
        self.manifest = Manifest(start.isoformat(), days, scale, seed)
        self.day_list = [start + timedelta(days=i) for i in range(days)]
        self.t0 = _epoch(start)
        self.t_end = self.t0 + days * DAY_S

    def day_of(self, epoch_s: np.ndarray) -> np.ndarray:
        return (epoch_s - self.t0) // DAY_S

    # ---------------------------------------------------------------- operational database
    def customers(self) -> pl.DataFrame:
        s, rng = self.scale, self.rng
        n_initial = int(s.customers * 0.9)
        n_new = s.customers - n_initial
        created_day = np.concatenate(
            [np.zeros(n_initial, dtype=np.int64), np.sort(rng.integers(0, self.days, n_new))]
        )
        created = self.t0 + created_day * DAY_S + rng.integers(0, DAY_S, s.customers)
        ids = np.arange(1, s.customers + 1)
        segment = SEGMENTS[rng.choice(3, s.customers, p=[0.6, 0.25, 0.15])]
        # A few customers change segment on a later day, which bumps updated_at.
        updated = created.copy()
        later = rng.random(s.customers) < 0.05
        delay = rng.integers(1, max(2, self.days), s.customers) * DAY_S
        moved = later & (created + delay < self.t_end)
        updated[moved] = np.minimum(created[moved] + delay[moved], self.t_end - 1)
        segment[moved] = SEGMENTS[rng.integers(0, 3, int(moved.sum()))]
        self.customer_created = created
        return pl.DataFrame(
            {
                "customer_id": ids,
                "name": np.char.add("Customer ", ids.astype("U")),
                "email": np.char.add(np.char.add("customer", ids.astype("U")), "@example.com"),
                "segment": segment,
                "region": REGIONS[rng.integers(0, len(REGIONS), s.customers)],
                "created_at": _ts_text(created),
                "updated_at": _ts_text(updated),
            }
        )

    def products(self) -> pl.DataFrame:
        s, rng = self.scale, self.rng
        ids = np.arange(1, s.products + 1)
        price = np.round(np.clip(rng.lognormal(3.3, 0.8, s.products), 2, 900), 2)
        cost = np.round(price * rng.uniform(0.4, 0.8, s.products), 2)
        created = self.t0 + rng.integers(0, 3_600, s.products)
        updated = created.copy()
        # Some prices change on a later day: orders after the change use the new price.
        changed = (rng.random(s.products) < 0.1) & (self.days > 1)
        change_at = self.t0 + rng.integers(1, max(2, self.days), s.products) * DAY_S
        change_at += rng.integers(0, DAY_S, s.products)
        new_price = np.round(price * rng.uniform(0.85, 1.15, s.products), 2)
        updated[changed] = change_at[changed]
        self.price_old, self.price_new = price, np.where(changed, new_price, price)
        self.price_change_at = np.where(changed, change_at, np.iinfo(np.int64).max)
        self.unit_cost = cost
        return pl.DataFrame(
            {
                "product_id": ids,
                "name": np.char.add("Product ", ids.astype("U")),
                "category": CATEGORIES[rng.integers(0, len(CATEGORIES), s.products)],
                "unit_price": self.price_new,
                "unit_cost": cost,
                "updated_at": _ts_text(updated),
            }
        )

    def orders(self) -> pl.DataFrame:
        s, rng, d = self.scale, self.rng, self.dirt
        n = s.orders_per_day * self.days
        day = np.repeat(np.arange(self.days), s.orders_per_day)
        order_ts = self.t0 + day * DAY_S + rng.integers(0, DAY_S, n)
        # Each order's customer already exists when the order is placed.
        existing = np.searchsorted(np.sort(self.customer_created), order_ts, side="right")
        customer_idx = (rng.random(n) * np.maximum(existing, 1)).astype(np.int64)
        customer_id = np.argsort(self.customer_created, kind="stable")[customer_idx] + 1
        product_id = np.minimum(rng.zipf(1.3, n), s.products).astype(np.int64)
        product_id = (product_id + rng.integers(0, s.products, n)) % s.products + 1
        quantity = np.minimum(rng.geometric(0.55, n), 9)
        p = product_id - 1
        price = np.where(order_ts >= self.price_change_at[p], self.price_new[p], self.price_old[p])
        amount = np.round(price * quantity, 2)
        # Most orders move on (shipped, delivered, ...) the same day or later; only the latest
        # version survives in the operational database.
        status = np.full(n, "placed", dtype="U16")
        updated = order_ts.copy()
        moves = rng.random(n) < 0.6
        move_at = order_ts + rng.integers(1_800, 3 * DAY_S, n)
        moves &= move_at < self.t_end
        updated[moves] = move_at[moves]
        status[moves] = UPDATED_STATUSES[rng.choice(4, int(moves.sum()), p=[0.5, 0.35, 0.1, 0.05])]
        self.order_frame = (order_ts, customer_id, product_id, quantity)

        dirty = _take_disjoint(
            rng,
            n,
            {
                "negative_amount": d.negative_amounts,
                "unknown_status": d.unknown_values,
                "null_customer": d.null_required,
                "missing_customer": d.missing_references,
                "missing_product": d.missing_references,
            },
        )
        amount[dirty["negative_amount"]] *= -1
        status[dirty["unknown_status"]] = UNKNOWN_STATUS
        customer_out = customer_id.astype(object)
        customer_out[dirty["null_customer"]] = None
        customer_out[dirty["missing_customer"]] = MISSING_KEY_BASE + dirty["missing_customer"]
        product_id = product_id.copy()
        product_id[dirty["missing_product"]] = MISSING_KEY_BASE + dirty["missing_product"]
        self.valid_order = np.ones(n, dtype=bool)
        for rows in dirty.values():
            self.valid_order[rows] = False

        extract_day = self.day_of(updated)
        for i, day_ in enumerate(self.day_list):
            counts = {"rows": int((extract_day == i).sum())}
            counts |= {k: int((extract_day[v] == i).sum()) for k, v in dirty.items()}
            self.manifest.add(day_, "orders", counts)
        return pl.DataFrame(
            {
                "order_id": np.arange(1, n + 1),
                "customer_id": pl.Series(customer_out.tolist(), dtype=pl.Int64),
                "product_id": product_id,
                "quantity": quantity,
                "amount": amount,
                "status": status,
                "order_ts": _ts_text(order_ts),
                "updated_at": _ts_text(updated),
            }
        )

    # ---------------------------------------------------------------- clickstream
    def clickstream_day(self, i: int) -> list[bytes]:
        s, rng, d = self.scale, self.rng, self.dirt
        day0 = self.t0 + i * DAY_S
        order_ts, customer_id, product_id, quantity = self.order_frame
        today = (order_ts >= day0) & (order_ts < day0 + DAY_S) & self.valid_order
        o_ts, o_cust, o_prod = order_ts[today], customer_id[today], product_id[today]
        o_id = np.nonzero(today)[0] + 1
        # A purchase is the end of a session: view, add_to_cart, purchase.
        m = len(o_ts)
        p_ts = np.concatenate(
            [o_ts - rng.integers(300, 1_200, m), o_ts - rng.integers(30, 300, m), o_ts]
        )
        p_type = np.repeat(np.array(["view", "add_to_cart", "purchase"]), m)
        p_user = np.tile(o_cust, 3)
        p_prod = np.tile(o_prod, 3)
        p_order = np.concatenate([np.zeros(2 * m, dtype=np.int64), o_id])
        p_session = np.tile(np.arange(m), 3)
        # Browsing fills the rest of the day's events.
        b = max(0, s.events_per_day - 3 * m)
        n_sessions = max(1, b // 6)
        b_session = m + rng.integers(0, n_sessions, b)
        b_ts = day0 + rng.integers(0, DAY_S, b)
        b_type = BROWSE_TYPES[rng.choice(4, b, p=[0.7, 0.15, 0.1, 0.05])]
        b_user = rng.integers(1, s.customers + 1, b)
        b_prod = rng.integers(1, s.products + 1, b)
        # Late events happened hours to days before the day whose folder they land in.
        late = _take_disjoint(rng, b, {"late": d.late_events})["late"]
        b_ts[late] -= rng.integers(2 * 3_600, 3 * DAY_S, len(late))

        ts = np.concatenate([p_ts, b_ts])
        n = len(ts)
        etype = np.concatenate([p_type, b_type]).astype("U16")
        prod = np.concatenate([p_prod, b_prod])
        is_search = etype == "search"
        session = np.concatenate([p_session, b_session])
        day_tag = self.day_list[i].strftime("%Y%m%d")
        event_id = np.char.add(f"evt-{day_tag}-", np.char.zfill(np.arange(n).astype("U"), 8))
        users = np.concatenate([p_user, b_user]).astype(object)
        dirty = _take_disjoint(
            rng,
            n,
            {"null_user": d.null_required, "unknown_event_type": d.unknown_values},
        )
        users[dirty["null_user"]] = None
        etype[dirty["unknown_event_type"]] = UNKNOWN_EVENT_TYPE
        order_col = np.concatenate([p_order, np.zeros(b, dtype=np.int64)]).astype(object)
        order_col[order_col == 0] = None
        millis = rng.integers(0, 1_000, n)
        stamp = np.char.add(
            np.char.add(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "."),
            np.char.add(np.char.zfill(millis.astype("U"), 3), "Z"),
        )
        frame = pl.DataFrame(
            {
                "event_id": event_id,
                "user_id": pl.Series(users.tolist(), dtype=pl.Int64),
                "session_id": np.char.add(f"s-{day_tag}-", session.astype("U")),
                "event_type": etype,
                "page_url": np.where(
                    is_search, "/search", np.char.add("/products/", prod.astype("U"))
                ),
                "timestamp": stamp,
                "properties": pl.DataFrame(
                    {
                        "product_id": pl.Series(np.where(is_search, 0, prod)).replace(0, None),
                        "order_id": pl.Series(order_col.tolist(), dtype=pl.Int64),
                        "query": pl.Series(np.where(is_search, "gift ideas", None).tolist()),  # pyright: ignore[reportCallIssue, reportArgumentType] - numpy's stubs reject None
                    }
                ).to_struct(),
            }
        )
        dirty_rows = np.zeros(n, dtype=bool)
        for rows in dirty.values():
            dirty_rows[rows] = True
        order = rng.permutation(n)
        lines = frame[order]
        counts = {
            "events": n,
            "late": len(late),
            "null_user": len(dirty["null_user"]),
            "unknown_event_type": len(dirty["unknown_event_type"]),
        }
        out = self._dirty_lines(
            lines.write_ndjson().encode().splitlines(),
            d.duplicate_events,
            counts,
            "duplicates",
            clean=~dirty_rows[order],
        )
        self.manifest.add(self.day_list[i], "clickstream", counts)
        return out

    def _dirty_lines(
        self,
        lines: list[bytes],
        dup_rate: float,
        counts: dict[str, int],
        dup_name: str,
        clean: np.ndarray | None = None,
    ) -> list[bytes]:
        """Truncate some lines (malformed JSON) and repeat others (at-least-once delivery).

        Only lines with no other dirt are picked, so each dirty line breaks exactly one rule.
        """
        rng = self.rng
        candidates = np.arange(len(lines)) if clean is None else np.nonzero(clean)[0]
        picks = _take_disjoint(
            rng, len(candidates), {"malformed": self.dirt.malformed_lines, dup_name: dup_rate}
        )
        picks = {kind: candidates[rows] for kind, rows in picks.items()}
        arr = np.array(lines, dtype=object)
        for at in picks["malformed"]:  # only the few dirty rows, never every row
            arr[at] = arr[at][: len(arr[at]) // 2]
        dup = picks[dup_name]
        order = np.concatenate([np.arange(len(arr)), dup])
        # A redelivered line lands a little after its original.
        position = np.concatenate([np.arange(len(arr)), dup + rng.integers(1, 50, len(dup))])
        out = arr[order[np.argsort(position, kind="stable")]]
        counts["lines"] = len(out)
        counts["malformed"] = len(picks["malformed"])
        counts[dup_name] = len(dup)
        return out.tolist()

    # ---------------------------------------------------------------- inventory (Kafka sink)
    def inventory_days(self) -> list[list[bytes]]:
        s, rng = self.scale, self.rng
        order_ts, _, product_id, quantity = self.order_frame
        w = s.warehouses
        valid = np.nonzero(self.valid_order)[0]
        pw = (product_id[valid] - 1) * w + (valid % w)
        per_day = np.zeros((s.products * w, self.days))
        np.add.at(per_day, (pw, self.day_of(order_ts[valid])), quantity[valid])
        demand, peak = per_day.mean(axis=1), per_day.max(axis=1).astype(np.int64)
        # Restocking to at least the busiest day's demand keeps stock from going negative;
        # a few products run on a thin margin, so low-stock alerts have something to find.
        threshold = peak
        target = np.maximum(np.maximum(30, np.ceil(6 * demand)), 2 * peak).astype(np.int64)
        thin = rng.random(s.products * w) < 0.08
        target[thin] = peak[thin] + 1
        stock = np.zeros(s.products * w, dtype=np.int64)
        offsets = np.zeros(3, dtype=np.int64)
        keys_pw = np.arange(s.products * w)
        days_out = []
        for i in range(self.days):  # one iteration per day: each day starts from the last stock
            day0 = self.t0 + i * DAY_S
            restock = (stock < threshold) | (i == 0)
            r_keys = keys_pw[restock]
            r_change = target[restock] - stock[restock]
            r_ts = np.full(len(r_keys), day0)  # restocks arrive at midnight, before any sale
            stock[restock] = target[restock]
            sold = (order_ts >= day0) & (order_ts < day0 + DAY_S) & self.valid_order
            s_idx = np.nonzero(sold)[0]
            s_keys = (product_id[s_idx] - 1) * w + (s_idx % w)
            s_ts, s_change = order_ts[s_idx], -quantity[s_idx]
            keys = np.concatenate([r_keys, s_keys])
            ts = np.concatenate([r_ts, s_ts])
            change = np.concatenate([r_change, s_change])
            reason = np.concatenate(
                [
                    np.where(i == 0, "initial", "restock").repeat(len(r_keys)),
                    np.repeat("sale", len(s_keys)),
                ]
            )
            order = np.lexsort((reason == "sale", ts, keys))
            keys, ts, change, reason = keys[order], ts[order], change[order], reason[order]
            running = np.cumsum(change)
            starts = np.r_[0, np.nonzero(np.diff(keys))[0] + 1]
            group_base = np.repeat(
                running[starts] - change[starts], np.diff(np.r_[starts, len(keys)])
            )
            before = stock.copy()
            before[r_keys] -= r_change  # stock before this day's restocks
            level = before[keys] + running - group_base
            np.add.at(stock, s_keys, s_change)
            by_time = np.argsort(ts, kind="stable")
            keys, ts, change, reason, level = (
                a[by_time] for a in (keys, ts, change, reason, level)
            )
            product = keys // w + 1
            partition = product % 3
            offset = np.empty(len(keys), dtype=np.int64)
            for part in range(3):  # three Kafka partitions, each with its own offsets
                mask = partition == part
                offset[mask] = offsets[part] + np.arange(int(mask.sum()))
                offsets[part] += int(mask.sum())
            day_tag = self.day_list[i].strftime("%Y%m%d")
            frame = pl.DataFrame(
                {
                    "topic": np.repeat("inventory-events", len(keys)),
                    "partition": partition,
                    "offset": offset,
                    "key": product.astype("U"),
                    "event_id": np.char.add(
                        f"inv-{day_tag}-", np.char.zfill(np.arange(len(keys)).astype("U"), 7)
                    ),
                    "product_id": product,
                    "warehouse_id": np.char.add("wh-", (keys % w + 1).astype("U")),
                    "change": change,
                    "stock_level": level,
                    "reason": reason,
                    "event_ts": np.char.add(
                        np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "Z"
                    ),
                }
            )
            counts = {"events": len(keys), "negative_stock": int((level < 0).sum())}
            lines = self._dirty_lines(
                frame.write_ndjson().encode().splitlines(),
                self.dirt.duplicate_deliveries,
                counts,
                "duplicates",
            )
            self.manifest.add(self.day_list[i], "inventory", counts)
            days_out.append(lines)
        return days_out


def _write_sqlite(path: Path, tables: dict[str, tuple[str, pl.DataFrame]]) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        for name, (ddl, frame) in tables.items():
            con.execute(ddl)
            cols = ", ".join(frame.columns)
            marks = ", ".join("?" for _ in frame.columns)
            con.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})", frame.iter_rows())
            con.execute(f"CREATE INDEX {name}_updated_at ON {name} (updated_at)")


DDL = {
    "customers": """CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT,
        email TEXT, segment TEXT, region TEXT, created_at TEXT, updated_at TEXT)""",
    "products": """CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT,
        category TEXT, unit_price DECIMAL(12,2), unit_cost DECIMAL(12,2), updated_at TEXT)""",
    "orders": """CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER,
        product_id INTEGER, quantity INTEGER, amount DECIMAL(12,2), status TEXT,
        order_ts TEXT, updated_at TEXT)""",
}


# The same tables in PostgreSQL, typed as an operational database would type them.
PG_DDL = {
    "customers": """CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name TEXT,
        email TEXT, segment TEXT, region TEXT, created_at TIMESTAMP, updated_at TIMESTAMP)""",
    "products": """CREATE TABLE products (product_id BIGINT PRIMARY KEY, name TEXT,
        category TEXT, unit_price NUMERIC(12,2), unit_cost NUMERIC(12,2), updated_at TIMESTAMP)""",
    "orders": """CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT,
        product_id BIGINT, quantity INTEGER, amount NUMERIC(12,2), status TEXT,
        order_ts TIMESTAMP, updated_at TIMESTAMP)""",
}


def _write_postgres(settings: Settings, tables: dict[str, pl.DataFrame]) -> None:
    """Replace the source tables in the PostgreSQL database ``LAKEHOUSE_SOURCE_URL`` names."""
    import psycopg2
    from psycopg2.extras import execute_values

    host_db = settings.source_url.removeprefix("jdbc:postgresql://").split("?")[0]
    host_port, _, database = host_db.partition("/")
    host, _, port = host_port.partition(":")
    with (
        psycopg2.connect(
            host=host,
            port=int(port or 5432),
            dbname=database,
            user=settings.source_user or None,
            password=settings.source_password or None,
        ) as con,
        con.cursor() as cur,
    ):
        for name, frame in tables.items():
            # Names come from this module's constants, never from input.
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(PG_DDL[name])
            cols = ", ".join(frame.columns)
            execute_values(cur, f"INSERT INTO {name} ({cols}) VALUES %s", frame.iter_rows())
            cur.execute(f"CREATE INDEX {name}_updated_at ON {name} (updated_at)")


def _write_landing_s3(settings: Settings, source: str, day: date, lines: list[bytes]) -> None:
    """The same files, as objects under ``s3://bucket/prefix/<source>/<day>/``."""
    import boto3

    bucket, _, prefix = settings.landing.removeprefix("s3://").rstrip("/").partition("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key or None,
        aws_secret_access_key=settings.s3_secret_key or None,
    )
    folder = f"{prefix}/{source}/{day.isoformat()}" if prefix else f"{source}/{day.isoformat()}"
    stale = s3.list_objects_v2(Bucket=bucket, Prefix=f"{folder}/").get("Contents", [])
    for item in stale:
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    for name, body in _files(lines):
        s3.put_object(Bucket=bucket, Key=f"{folder}/{name}", Body=body)


def _write_landing(root: Path, source: str, day: date, lines: list[bytes]) -> None:
    folder = root / source / day.isoformat()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, body in _files(lines):
        (folder / name).write_bytes(body)


def _files(lines: list[bytes]) -> list[tuple[str, bytes]]:
    """A day's lines as the sink lands them: ``part-NNNNN.jsonl`` of LINES_PER_FILE lines."""
    return [
        (f"part-{part:05d}.jsonl", b"\n".join(lines[at : at + LINES_PER_FILE]) + b"\n")
        for part, at in enumerate(range(0, max(1, len(lines)), LINES_PER_FILE))
    ]


def generate(
    settings: Settings,
    start: date,
    days: int,
    scale: str = "small",
    seed: int = 7,
    dirt: Dirt | None = None,
) -> Manifest:
    """Write the operational database and landing files for ``days`` days from ``start``."""
    gen = Generator(start, days, scale, seed, dirt or Dirt())
    customers, products = gen.customers(), gen.products()
    orders = gen.orders()
    settings.home.mkdir(parents=True, exist_ok=True)
    tables = {"customers": customers, "products": products, "orders": orders}
    if settings.source_url.startswith("jdbc:postgresql:"):
        _write_postgres(settings, tables)
    else:
        _write_sqlite(settings.source_db_path, {n: (DDL[n], f) for n, f in tables.items()})
    for name, frame in (("customers", customers), ("products", products)):
        changed_on = frame["updated_at"].str.slice(0, 10).value_counts()
        for day_text, n in changed_on.iter_rows():
            gen.manifest.add(date.fromisoformat(day_text), name, {"rows": n})

    def land(source: str, day: date, lines: list[bytes]) -> None:
        if settings.landing.startswith("s3://"):
            _write_landing_s3(settings, source, day, lines)
        else:
            _write_landing(Path(settings.landing), source, day, lines)

    for i, day in enumerate(gen.day_list):
        land("clickstream", day, gen.clickstream_day(i))
    for day, lines in zip(gen.day_list, gen.inventory_days(), strict=True):
        land("inventory", day, lines)
    (settings.home / "generator_manifest.json").write_text(
        json.dumps(asdict(gen.manifest), indent=2, sort_keys=True)
    )
    return gen.manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="inject no dirt at all")
    parser.add_argument(
        "--source-url",
        help="the operational database to write (default LAKEHOUSE_SOURCE_URL: the embedded "
        "SQLite file), e.g. jdbc:postgresql://host:5432/shop",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env().with_overrides(source_url=args.source_url)
    manifest = generate(
        settings, args.start, args.days, args.scale, args.seed, Dirt.none() if args.clean else None
    )
    for day, sources in manifest.per_day.items():
        summary = ", ".join(
            f"{src} {c.get('lines', c.get('rows', c.get('events', 0)))}"
            for src, c in sources.items()
        )
        print(f"{day}: {summary}")
    print(f"wrote {settings.source_url.split('?')[0]} and {settings.landing}")


if __name__ == "__main__":
    main()
