"""Every source of the lakehouse and the tables it feeds: the one list the rest is built from.

Bronze's jobs, the storage layer's source checks, the Dagster assets (Bronze, Silver, their
dependencies), the landing sensors and their jobs, and the quality report's inputs are all
generated from ``SOURCES``. A Silver table's transform receives exactly the Silver tables its
entry ``reads``, and those are its asset's dependencies, so the order Dagster runs the steps in
cannot drift from the reads. Plain data: no Spark, no Dagster.

Adding a source (see the README, "Adding a source"): one entry here, its Silver module
(``spark_jobs/silver/<silver>.py``, which declares ``TABLE``), its dbt source and staging
model, and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["database", "landing"]


@dataclass(frozen=True)
class Source:
    """One source: where its rows come from, and its Bronze and Silver tables."""

    name: str
    """The operational table (``database``) or the landing zone folder (``landing``)."""
    kind: Kind
    bronze: str  # lakehouse.bronze.<bronze>
    silver: str  # lakehouse.silver.<silver>, and <silver>_quarantine beside it
    bronze_description: str
    silver_description: str
    key: str | None = None
    """A database table's primary key: the unit of "has Bronze seen this row"."""
    reads: tuple[str, ...] = ()
    """The other Silver tables (by ``silver`` name) its Silver transform reads."""
    module: str | None = None
    """The module declaring its Silver ``TABLE``; default ``spark_jobs.silver.<silver>``."""

    def __post_init__(self) -> None:
        if self.kind not in ("database", "landing"):
            raise ValueError(f"source {self.name}: unknown kind {self.kind!r}")
        if (self.kind == "database") != (self.key is not None):
            raise ValueError(f"source {self.name}: a database table has a key, a feed has none")
        if self.kind == "database" and self.bronze != self.name:
            raise ValueError(f"source {self.name}: a database table lands as bronze.{self.name}")

    @property
    def silver_module(self) -> str:
        return self.module or f"spark_jobs.silver.{self.silver}"


SOURCES: tuple[Source, ...] = (
    Source(
        "customers",
        "database",
        bronze="customers",
        silver="customers",
        key="customer_id",
        bronze_description="Customers changed that day in the operational database, as extracted.",
        silver_description="Current state of every customer: typed, latest version per "
        "customer_id, validated.",
    ),
    Source(
        "products",
        "database",
        bronze="products",
        silver="products",
        key="product_id",
        bronze_description="Products changed that day in the operational database, as extracted.",
        silver_description="Current state of every product: typed, latest version per "
        "product_id, validated.",
    ),
    Source(
        "orders",
        "database",
        bronze="orders",
        silver="orders",
        key="order_id",
        reads=("customers", "products"),
        bronze_description="Orders changed that day in the operational database, as extracted.",
        silver_description="Latest version of every order, typed, with customer and product "
        "references checked.",
    ),
    Source(
        "clickstream",
        "landing",
        bronze="clickstream",
        silver="clickstream",
        reads=("products",),
        bronze_description="Every raw clickstream JSON line landed that day, with file and "
        "line number.",
        silver_description="Web events parsed from raw lines, one per event_id, with event "
        "date, hour and product.",
    ),
    Source(
        "inventory",
        "landing",
        bronze="inventory_events",
        silver="inventory",
        reads=("products",),
        bronze_description="Every raw inventory event line the Kafka sink landed that day.",
        silver_description="Stock level per product and warehouse at the end of each day, "
        "from inventory events.",
    ),
)


def database_tables(sources: tuple[Source, ...] = SOURCES) -> list[Source]:
    return [s for s in sources if s.kind == "database"]


def landing_feeds(sources: tuple[Source, ...] = SOURCES) -> list[Source]:
    return [s for s in sources if s.kind == "landing"]


def by_name(name: str, sources: tuple[Source, ...] = SOURCES) -> Source:
    """The source called ``name``; a clear error naming the known ones otherwise."""
    for source in sources:
        if source.name == name:
            return source
    raise ValueError(f"unknown source {name!r}; the sources are {[s.name for s in sources]}")


def in_dependency_order(sources: tuple[Source, ...] = SOURCES) -> list[Source]:
    """Sources ordered so that each comes after the Silver tables it reads.

    A read of a table no source declares, or a cycle, is an error here, at import, rather than
    a step that runs before its inputs exist.
    """
    silver = {s.silver: s for s in sources}
    done: dict[str, Source] = {}

    def visit(source: Source, path: tuple[str, ...]) -> None:
        if source.silver in done:
            return
        if source.silver in path:
            raise ValueError(f"Silver reads form a cycle: {' -> '.join((*path, source.silver))}")
        for name in source.reads:
            if name not in silver:
                raise ValueError(f"silver.{source.silver} reads silver.{name}, which no source has")
            visit(silver[name], (*path, source.silver))
        done[source.silver] = source

    for source in sources:
        visit(source, ())
    return list(done.values())
