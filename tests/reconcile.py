"""Every Gold model recomputed from Silver by another engine: DuckDB over the Iceberg tables
read through pyiceberg (no Spark, no dbt), written from the README's and the model YAML's
definitions rather than from the models' SQL.

``differences`` compares each recomputed table with the one the pipeline wrote, all rows and
all columns: keys, counts, text and money exactly (to the cent); the rounded ratios
(``RATIOS``: rates, margins, days of cover) within one unit of their last decimal, because
Spark rounds the exact decimal and DuckDB the binary double of a quotient.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb

SILVER = (
    "orders",
    "customers",
    "products",
    "customers_history",
    "products_history",
    "clickstream",
    "inventory",
)

SALE = "status IN ('placed', 'shipped', 'delivered')"

VERSIONS = """
    SELECT *, updated_at AS valid_from,
           lead(updated_at) OVER (PARTITION BY {key} ORDER BY updated_at) AS valid_to,
           row_number() OVER (PARTITION BY {key} ORDER BY updated_at) AS version,
           lead(updated_at) OVER (PARTITION BY {key} ORDER BY updated_at) IS NULL AS is_current
    FROM (SELECT * FROM silver_{table}_history
          QUALIFY row_number() OVER (PARTITION BY {key}, updated_at
                                     ORDER BY _ingest_date, _run_id) = 1)
"""

# The version valid at a time: its [valid_from, valid_to) holds it, or it is the first one and
# the time is before it.
AT = (
    "({t} < coalesce({v}.valid_to, TIMESTAMPTZ '9999-12-31')"
    " AND ({t} >= {v}.valid_from OR {v}.version = 1))"
)

END_OF_DAY = "CAST(CAST({d} AS TIMESTAMP) + INTERVAL 1 DAY AS TIMESTAMPTZ)"

MODELS: dict[str, str] = {
    "dim_customers_history": """
        SELECT customer_id, name AS customer_name, email, segment AS customer_segment, region,
               created_at, valid_from, valid_to, version, is_current
        FROM customer_versions""",
    "dim_products_history": """
        SELECT product_id, name AS product_name, category, unit_price, unit_cost,
               valid_from, valid_to, version, is_current
        FROM product_versions""",
    "fct_orders": f"""
        SELECT o.order_id, o.order_ts, o.customer_id, o.product_id,
               coalesce(cv.segment, c.segment) AS customer_segment,
               coalesce(cv.region, c.region) AS region,
               coalesce(pv.category, p.category) AS category,
               o.status, o.{SALE} AS is_sale, o.quantity, o.amount,
               coalesce(pv.unit_cost, p.unit_cost) AS unit_cost,
               coalesce(pv.unit_cost, p.unit_cost) * o.quantity AS cost,
               o.amount - coalesce(pv.unit_cost, p.unit_cost) * o.quantity AS profit,
               o.order_date
        FROM silver_orders o
        JOIN silver_customers c USING (customer_id)
        JOIN silver_products p USING (product_id)
        LEFT JOIN customer_versions cv
          ON cv.customer_id = o.customer_id AND {AT.format(t="o.order_ts", v="cv")}
        LEFT JOIN product_versions pv
          ON pv.product_id = o.product_id AND {AT.format(t="o.order_ts", v="pv")}""",
    "agg_daily_sales": """
        SELECT category, region, customer_segment,
               count(DISTINCT order_id) AS sales, count(DISTINCT customer_id) AS unique_customers,
               sum(quantity) AS quantity, sum(amount) AS revenue,
               round(sum(amount) / count(DISTINCT order_id), 2) AS avg_sale_value,
               sum(profit) AS profit,
               CASE WHEN sum(amount) = 0 THEN NULL
                    ELSE round(100 * sum(profit) / sum(amount), 2) END AS margin_pct,
               order_date
        FROM fct WHERE is_sale
        GROUP BY ALL""",
    "customer_segments": f"""
        WITH days AS (SELECT DISTINCT order_date FROM silver_orders),
        sizes AS (
            SELECT d.order_date, coalesce(v.segment, c.segment) AS customer_segment,
                   count(*) AS segment_customers
            FROM days d
            JOIN silver_customers c ON CAST(c.created_at AS DATE) <= d.order_date
            LEFT JOIN customer_versions v ON v.customer_id = c.customer_id
              AND {AT.format(t=END_OF_DAY.format(d="d.order_date"), v="v")}
            GROUP BY ALL),
        sales AS (
            SELECT f.order_date, f.order_id, f.customer_id, f.amount,
                   coalesce(v.segment, f.customer_segment) AS customer_segment
            FROM fct f
            LEFT JOIN customer_versions v ON v.customer_id = f.customer_id
              AND {AT.format(t=END_OF_DAY.format(d="f.order_date"), v="v")}
            WHERE f.is_sale),
        activity AS (
            SELECT order_date, customer_segment, count(DISTINCT customer_id) AS active_customers,
                   count(DISTINCT order_id) AS sales, sum(amount) AS revenue
            FROM sales GROUP BY ALL)
        SELECT s.customer_segment, s.segment_customers,
               coalesce(a.active_customers, 0) AS active_customers,
               coalesce(a.sales, 0) AS sales, coalesce(a.revenue, 0) AS revenue,
               round(a.revenue / a.active_customers, 2) AS revenue_per_active_customer,
               s.order_date
        FROM sizes s LEFT JOIN activity a USING (order_date, customer_segment)""",
    "dim_customers": """
        SELECT c.customer_id, c.name AS customer_name, c.email, c.segment AS customer_segment,
               c.region, c.created_at,
               min(f.order_date) AS first_sale_date, max(f.order_date) AS last_sale_date,
               count(DISTINCT f.order_id) AS lifetime_sales,
               coalesce(sum(f.amount), 0) AS lifetime_revenue
        FROM silver_customers c LEFT JOIN fct f ON f.customer_id = c.customer_id AND f.is_sale
        GROUP BY ALL""",
    "dim_products": """
        SELECT p.product_id, p.name AS product_name, p.category, p.unit_price, p.unit_cost,
               CASE WHEN p.unit_price = 0 THEN NULL
                    ELSE round(100 * (p.unit_price - p.unit_cost) / p.unit_price, 2)
               END AS list_margin_pct,
               coalesce(sum(f.quantity), 0) AS units_sold, coalesce(sum(f.amount), 0) AS revenue
        FROM silver_products p LEFT JOIN fct f ON f.product_id = p.product_id AND f.is_sale
        GROUP BY ALL""",
    "product_funnel": """
        WITH clicks AS (
            SELECT event_date, product_id,
                   count(*) FILTER (WHERE event_type = 'view') AS views,
                   count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
                   count(*) FILTER (WHERE event_type = 'purchase') AS purchase_events
            FROM silver_clickstream WHERE product_id IS NOT NULL GROUP BY ALL),
        bought AS (
            SELECT order_date AS event_date, product_id,
                   count(DISTINCT order_id) AS orders, sum(quantity) AS units
            FROM fct GROUP BY ALL)
        SELECT product_id, coalesce(views, 0) AS views, coalesce(add_to_carts, 0) AS add_to_carts,
               coalesce(purchase_events, 0) AS purchase_events, coalesce(orders, 0) AS orders,
               coalesce(units, 0) AS units,
               round(add_to_carts / nullif(views, 0), 4) AS view_to_cart_rate,
               round(coalesce(orders, 0) / nullif(add_to_carts, 0), 4) AS cart_to_order_rate,
               event_date
        FROM clicks FULL OUTER JOIN bought USING (event_date, product_id)""",
    "low_stock_alerts": """
        WITH days AS (SELECT DISTINCT snapshot_date AS as_of_date FROM silver_inventory),
        latest AS (
            SELECT d.as_of_date, i.product_id, i.warehouse_id,
                   arg_max(i.stock_level, i.snapshot_date) AS stock_level
            FROM days d JOIN silver_inventory i ON i.snapshot_date <= d.as_of_date
            GROUP BY ALL),
        stock AS (
            SELECT as_of_date, product_id, sum(stock_level) AS stock_on_hand
            FROM latest GROUP BY ALL),
        first_sale AS (
            SELECT product_id, min(order_date) AS first_sale_date FROM fct WHERE is_sale
            GROUP BY ALL),
        velocity AS (
            SELECT d.as_of_date, f.product_id,
                   sum(f.quantity) / least(7, max(d.as_of_date - s.first_sale_date) + 1)
                     AS units_per_day
            FROM days d
            JOIN fct f ON f.is_sale AND f.order_date > d.as_of_date - 7
                      AND f.order_date <= d.as_of_date
            JOIN first_sale s ON s.product_id = f.product_id
            GROUP BY ALL)
        SELECT s.product_id, p.name AS product_name, p.category, s.stock_on_hand,
               round(v.units_per_day, 2) AS units_per_day,
               round(s.stock_on_hand / v.units_per_day, 1) AS days_of_cover, s.as_of_date
        FROM stock s JOIN velocity v USING (as_of_date, product_id)
        JOIN silver_products p ON p.product_id = s.product_id
        WHERE s.stock_on_hand < v.units_per_day * 3""",
}

RATIOS = {
    "avg_sale_value": Decimal("0.01"),  # money, but a quotient: rounded by both engines
    "margin_pct": Decimal("0.01"),
    "revenue_per_active_customer": Decimal("0.01"),
    "list_margin_pct": Decimal("0.01"),
    "view_to_cart_rate": Decimal("0.0001"),
    "cart_to_order_rate": Decimal("0.0001"),
    "units_per_day": Decimal("0.01"),
    "days_of_cover": Decimal("0.1"),
}


def recompute(catalog) -> dict[str, list[dict[str, Any]]]:
    """Each Gold model's rows, from the Silver tables alone."""
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    for table in SILVER:
        arrow = catalog.load_table(f"silver.{table}").scan().to_arrow()
        db.register(f"silver_{table}", arrow)
    for name, key in (("customer", "customer_id"), ("product", "product_id")):
        db.execute(
            f"CREATE TEMP TABLE {name}_versions AS " + VERSIONS.format(key=key, table=f"{name}s")
        )
    db.execute(f"CREATE TEMP TABLE fct AS {MODELS['fct_orders']}")
    return {name: db.sql(sql).to_arrow_table().to_pylist() for name, sql in MODELS.items()}


def _same(column: str, ours: Any, theirs: Any) -> bool:
    if column in RATIOS and ours is not None and theirs is not None:
        return abs(Decimal(str(ours)) - Decimal(str(theirs))) <= RATIOS[column]
    if isinstance(ours, float) or isinstance(theirs, float):
        return ours is not None and theirs is not None and abs(ours - theirs) < 1e-9
    return ours == theirs


def differences(expected: list[dict], written: list[dict], limit: int = 5) -> list[str]:
    """What differs between the recomputed rows and the written ones: columns, row counts,
    then rows (matched on their non-ratio columns, each side sorted the same way)."""
    if not expected and not written:
        return []
    columns = set((expected or written)[0])
    if written and set(written[0]) != columns:
        return [f"columns: written {sorted(written[0])}, recomputed {sorted(columns)}"]
    if len(expected) != len(written):
        return [f"rows: written {len(written)}, recomputed {len(expected)}"]
    exact = sorted(c for c in columns if c not in RATIOS)

    def order(row: dict) -> tuple:
        return tuple((row[c] is None, str(row[c])) for c in exact)

    out = []
    for ours, theirs in zip(sorted(expected, key=order), sorted(written, key=order), strict=True):
        wrong = [c for c in sorted(columns) if not _same(c, ours[c], theirs[c])]
        if wrong:
            out.append(
                ", ".join(f"{c}: written {theirs[c]!r}, recomputed {ours[c]!r}" for c in wrong)
            )
        if len(out) >= limit:
            break
    return out
