"""silver.products: the current state of every product, with its price and cost;
silver.products_history: every valid version of each, which Gold's type-2 history is built from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spark_jobs import quality as q
from spark_jobs.silver import checks
from spark_jobs.silver.checks import TableRules
from spark_jobs.silver.common import SilverTable, Split, current_and_history, typed, versions_state

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TYPES = {
    "product_id": "long",
    "name": "string",
    "category": "string",
    "unit_price": "decimal(12,2)",
    "unit_cost": "decimal(12,2)",
    "updated_at": "timestamp",
}

QUALITY = TableRules(
    rows=(
        q.not_null("product_id", action="fail"),
        q.not_null("category"),
        q.not_null("unit_price"),
        # Without a cost, profit and margin would turn NULL in Gold without a word.
        q.not_null("unit_cost"),
        q.between("unit_price", 0, name="unit_price_non_negative"),
        q.between("unit_cost", 0, name="unit_cost_non_negative"),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
    ),
    checks=(
        checks.schema({c: "any" for c in ("product_id", "category", "unit_price", "unit_cost")}),
        checks.reconciles(),
        checks.unique(["product_id"]),
    ),
)


def clean_products(bronze: DataFrame, run_id: str) -> Split:
    rows = typed(bronze, TYPES, raw=("updated_at",))
    return versions_state(rows, "product_id", QUALITY, list(TYPES), run_id)


TABLE = SilverTable(
    QUALITY,
    lambda bronze, batch: clean_products(bronze, batch.run_id),
    current_and_history("product_id"),
    batch_day="_ingest_date",
    history=True,
)
