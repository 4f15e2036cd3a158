"""Silver: typed, deduplicated, validated. Failing rows go to quarantine with the rules broken.

One module per table (``customers``, ``products``, ``orders``, ``clickstream``,
``inventory``): its types, its quality rules (``QUALITY``), its pure ``clean_*`` transform
(DataFrames in, a ``Split`` out) and its ``TABLE`` spec. ``common`` and ``json_lines`` hold what
the tables share, ``checks`` the table checks, and ``runner`` reads Bronze, evaluates the rules,
writes Silver and its quarantine table, and reports. Which tables exist, what each reads and
which Bronze table feeds it come from ``spark_jobs.registry``.

    spark-submit spark_jobs/cli.py silver --date 2026-01-01
"""

from spark_jobs.silver.clickstream import clean_clickstream
from spark_jobs.silver.common import Batch, Lateness, Split, quarantine_rows
from spark_jobs.silver.customers import clean_customers
from spark_jobs.silver.inventory import clean_inventory_events, daily_stock
from spark_jobs.silver.orders import clean_orders
from spark_jobs.silver.products import clean_products
from spark_jobs.silver.runner import TABLES, SilverResult, SilverTable, run, run_table, tables

__all__ = [
    "TABLES",
    "Batch",
    "Lateness",
    "SilverResult",
    "SilverTable",
    "Split",
    "clean_clickstream",
    "clean_customers",
    "clean_inventory_events",
    "clean_orders",
    "clean_products",
    "daily_stock",
    "quarantine_rows",
    "run",
    "run_table",
    "tables",
]
