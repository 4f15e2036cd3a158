"""silver.orders: the latest version of every order, its customer and product checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from spark_jobs import quality as q
from spark_jobs.silver import checks
from spark_jobs.silver.checks import TableRules
from spark_jobs.silver.common import (
    BRONZE_DAY,
    Lateness,
    SilverTable,
    Split,
    current_state,
    merge,
    typed,
    with_products,
    with_reference,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")

TYPES = {
    "order_id": "long",
    "customer_id": "long",
    "product_id": "long",
    "quantity": "int",
    "amount": "decimal(12,2)",
    "status": "string",
    "order_ts": "timestamp",
    "updated_at": "timestamp",
}

QUALITY = TableRules(
    rows=(
        q.not_null("order_id", action="fail"),
        q.not_null("customer_id"),
        q.not_null("product_id"),
        q.not_null("amount"),
        q.between("quantity", 0, strict_low=True, name="quantity_positive"),
        q.between("quantity", high=50, name="quantity_plausible", action="warn"),
        q.between("amount", 0, name="amount_non_negative"),
        q.accepted_values("status", ORDER_STATUSES),
        q.not_null("order_ts", raw="order_ts_raw"),
        q.parses("order_ts_raw", "order_ts"),
        # An order placed after the day it was extracted (a 2099 typo) is dirt, not a partition.
        q.within_days("order_ts", BRONZE_DAY),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
        *q.references("customer_id", "_customer_found", "silver.customers", "customer"),
        *q.references("product_id", "_product_found", "silver.products", "product"),
    ),
    checks=(
        checks.schema({c: "any" for c in TYPES if c != "name"}),
        checks.reconciles(),
        checks.unique(["order_id"]),
        checks.row_count_band(),
        checks.freshness("updated_at", max_lag_hours=6),
    ),
)


def clean_orders(
    bronze: DataFrame,
    customers: DataFrame | None,
    products: DataFrame | None,
    run_id: str,
    lateness: Lateness | None = None,
) -> Split:
    """Latest version per order, typed, and checked against the whole of Silver's customers
    and products; an order whose customer or product has not arrived yet is held."""
    lateness = lateness or Lateness()

    def with_references(latest: DataFrame) -> DataFrame:
        checked = with_reference(latest, customers, "customer_id", "_customer_found")
        return with_products(checked, products, lateness)

    columns = [*TYPES, F.to_date("order_ts").alias("order_date")]
    rows = typed(bronze, TYPES, raw=("order_ts", "updated_at"))
    return current_state(rows, "order_id", QUALITY, columns, run_id, with_references)


TABLE = SilverTable(
    QUALITY,
    lambda bronze, batch: clean_orders(
        bronze, batch.reads["customers"], batch.reads["products"], batch.run_id, batch.lateness
    ),
    merge("order_id", "order_date"),
    batch_day="_ingest_date",
)
