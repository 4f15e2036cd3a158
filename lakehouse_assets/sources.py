"""The sources upstream of Bronze, as external assets: lineage in the UI starts at them.

Dagster does not materialise these; Bronze reads them. Their kinds follow the configuration
(a SQLite or PostgreSQL database, a local or S3 landing zone).
"""

from dagster import AssetKey, AssetSpec

from lakehouse_assets.annotations import OWNERS, layer
from spark_jobs.bronze import LANDING_TABLES
from spark_jobs.settings import Settings
from spark_jobs.storage import SOURCE_KEYS


def database_table(table: str) -> AssetKey:
    return AssetKey(["source", table])


def landing_feed(source: str) -> AssetKey:
    return AssetKey(["source", f"{source}_landing"])


def source_specs(settings: Settings) -> list[AssetSpec]:
    database = settings.source_url.split("?")[0]  # never the credentials of a query string
    db_kind = "postgres" if database.startswith("jdbc:postgresql:") else "sqlite"
    landing_kind = "s3" if settings.landing.startswith("s3://") else "file"
    common = {"group_name": "source", "owners": OWNERS, "tags": layer("source")}
    return [
        AssetSpec(
            database_table(table),
            description=f"The operational database's `{table}` table, extracted incrementally "
            f"by `updated_at` (key `{key}`).",
            kinds={db_kind},
            metadata={"database": database, "dagster/table_name": table},
            **common,
        )
        for table, key in SOURCE_KEYS.items()
    ] + [
        AssetSpec(
            landing_feed(source),
            description=f"Raw {source} JSON lines landed under `{settings.landing}/{source}/`.",
            kinds={landing_kind},
            metadata={"location": f"{settings.landing.rstrip('/')}/{source}/"},
            **common,
        )
        for source in LANDING_TABLES
    ]
