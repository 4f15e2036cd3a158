"""silver.customers: the current state of every customer; silver.customers_history: every
valid version of each (by ``updated_at``), which Gold's type-2 history is built from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spark_jobs import quality as q
from spark_jobs.silver import checks
from spark_jobs.silver.checks import TableRules
from spark_jobs.silver.common import SilverTable, Split, current_and_history, typed, versions_state

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SEGMENTS = ("consumer", "corporate", "small_business")
REGIONS = ("north", "south", "east", "west")

TYPES = {
    "customer_id": "long",
    "name": "string",
    "email": "string",
    "segment": "string",
    "region": "string",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}

QUALITY = TableRules(
    rows=(
        q.not_null("customer_id", action="fail"),
        q.not_null("email", action="warn"),
        q.accepted_values("segment", SEGMENTS),
        q.accepted_values("region", REGIONS),
        q.not_null("updated_at", raw="updated_at_raw"),
        q.parses("updated_at_raw", "updated_at"),
    ),
    checks=(
        checks.schema(
            {c: "any" for c in ("customer_id", "email", "segment", "region", "updated_at")}
        ),
        checks.reconciles(),
        checks.unique(["customer_id"]),
    ),
)


def clean_customers(bronze: DataFrame, run_id: str) -> Split:
    rows = typed(bronze, TYPES, raw=("updated_at",))
    return versions_state(rows, "customer_id", QUALITY, list(TYPES), run_id)


TABLE = SilverTable(
    QUALITY,
    lambda bronze, batch: clean_customers(bronze, batch.run_id),
    current_and_history("customer_id"),
    batch_day="_ingest_date",
    history=True,
)
