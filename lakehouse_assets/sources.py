"""The sources upstream of Bronze, as external assets: lineage in the UI starts at them.

Dagster does not materialise these; Bronze reads them. Their kinds follow the configuration
(a SQLite or PostgreSQL database, a local or S3 landing zone).
"""

from dagster import AssetKey, AssetSpec

from lakehouse_assets.annotations import OWNERS, layer
from spark_jobs.registry import SOURCES, Source
from spark_jobs.settings import Settings


def source_key(source: Source) -> AssetKey:
    """``[source, <table>]`` for a database table, ``[source, <feed>_landing]`` for a feed."""
    name = source.name if source.kind == "database" else f"{source.name}_landing"
    return AssetKey(["source", name])


def source_specs(settings: Settings, registered: tuple[Source, ...] = SOURCES) -> list[AssetSpec]:
    database = settings.source_url.split("?")[0]  # never the credentials of a query string
    db_kind = "postgres" if database.startswith("jdbc:postgresql:") else "sqlite"
    landing_kind = "s3" if settings.landing.startswith("s3://") else "file"
    common = {"group_name": "source", "owners": OWNERS, "tags": layer("source")}
    return [
        AssetSpec(
            source_key(s),
            description=f"The operational database's `{s.name}` table, extracted incrementally "
            f"by `updated_at` (key `{s.key}`).",
            kinds={db_kind},
            metadata={"database": database, "dagster/table_name": s.name},
            **common,
        )
        if s.kind == "database"
        else AssetSpec(
            source_key(s),
            description=f"Raw {s.name} JSON lines landed under `{settings.landing}/{s.name}/`.",
            kinds={landing_kind},
            metadata={"location": f"{settings.landing.rstrip('/')}/{s.name}/"},
            **common,
        )
        for s in registered
    ]
