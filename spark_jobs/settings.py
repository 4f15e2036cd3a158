"""Where the lakehouse lives and how to reach it: the one place that reads the environment.

Everything has an embedded default under ``LAKEHOUSE_HOME`` (local Spark, a SQLite-backed
Iceberg JDBC catalog, a local warehouse, a SQLite operational database and a local landing
folder). Each default can be replaced by configuration alone: a PostgreSQL catalog or source
database, a Spark cluster, an S3 landing bucket.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

CATALOG = "lakehouse"
NAMESPACES = ("bronze", "silver", "gold")
REPO_ROOT = Path(__file__).resolve().parent.parent


class LakehouseSetupError(RuntimeError):
    """Misconfiguration the user has to fix; the message is one line saying what to do."""


class EndpointUnavailable(LakehouseSetupError):
    """A configured server (Spark master, its workers, the Thrift server) does not answer.

    The message names the endpoint. Nothing was written: once it is up, a rerun succeeds.
    """


def _env(name: str, default: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name, "").strip()
    return value or default


def _int_env(name: str, default: int, environ: Mapping[str, str]) -> int:
    value = _env(name, str(default), environ)
    if not value.isdigit():
        raise LakehouseSetupError(f"{name}={value!r} is not a whole number")
    return int(value)


def _choice_env(name: str, choices: tuple[str, ...], environ: Mapping[str, str]) -> str:
    """One of ``choices`` (the first by default); anything else names them all."""
    value = _env(name, choices[0], environ)
    if value not in choices:
        raise LakehouseSetupError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


DBT_TARGETS = ("embedded", "thrift", "session")  # the outputs of dbt_project/profiles.yml


@dataclass(frozen=True)
class Settings:
    home: Path
    spark_master: str
    driver_memory: str
    catalog_uri: str
    catalog_user: str
    catalog_password: str
    warehouse: str
    source_url: str
    source_user: str
    source_password: str
    landing: str
    s3_endpoint_url: str
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    extra_jars: tuple[str, ...] = field(default=())
    # How long a row waits for a late customer or product before it counts as a failure.
    reference_grace_days: int = 3
    # Days before the window read again, for row versions committed after their day's run.
    extract_lookback_days: int = 2
    # The inventory stream quarantines an event older than the newest event time of earlier
    # micro-batches minus this many minutes (its watermark).
    stream_watermark_minutes: int = 60
    # Days and the 06:00 schedule are in this timezone (read when the code location loads).
    timezone: str = "UTC"
    # Failed runs are posted here (a Slack incoming webhook); empty: no alerts.
    slack_webhook_url: str = ""
    # Each main-job and report run's metrics are pushed here (a Prometheus Pushgateway,
    # http://host:9091); empty: no metrics are pushed.
    pushgateway_url: str = ""
    # The dbt-spark output in dbt_project/profiles.yml: embedded (the run's own Spark, served
    # over Thrift from its driver), thrift (a long-running Spark Thrift server) or session
    # (a Spark of dbt's own, on spark-defaults.conf).
    dbt_target: str = "embedded"
    # The interpreter Spark tasks run Python in: this project's, unless told otherwise.
    pyspark_python: str = sys.executable
    # dbt's thrift target (dbt_project/profiles.yml reads the same variables).
    thrift_host: str = "127.0.0.1"
    thrift_port: int = 10000
    # On a Spark cluster (spark://), a run waits this long for this many executors before it
    # fails naming the master, instead of waiting for cores forever.
    min_executors: int = 1
    executor_wait_s: int = 120
    # A Silver table, or Gold (on the run's own session), reading fewer rows than this runs on
    # Spark's interpreted expressions, not on the Java Spark generates and compiles for each
    # query (`session.compiled_from`); 0: always compiled.
    codegen_min_rows: int = 10_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        home = Path(_env("LAKEHOUSE_HOME", str(REPO_ROOT / ".lakehouse"), env)).resolve()
        extra = _env("LAKEHOUSE_EXTRA_JARS", "", env)
        return cls(
            home=home,
            spark_master=_env("SPARK_MASTER", "local[*]", env),
            driver_memory=_env("SPARK_DRIVER_MEMORY", "1536m", env),
            catalog_uri=_env("LAKEHOUSE_CATALOG_URI", f"jdbc:sqlite:{home / 'catalog.db'}", env),
            catalog_user=_env("LAKEHOUSE_CATALOG_USER", "", env),
            catalog_password=_env("LAKEHOUSE_CATALOG_PASSWORD", "", env),
            warehouse=_env("LAKEHOUSE_WAREHOUSE", (home / "warehouse").as_uri(), env),
            source_url=_env("LAKEHOUSE_SOURCE_URL", f"jdbc:sqlite:{home / 'source.db'}", env),
            source_user=_env("LAKEHOUSE_SOURCE_USER", "", env),
            source_password=_env("LAKEHOUSE_SOURCE_PASSWORD", "", env),
            landing=_env("LAKEHOUSE_LANDING", str(home / "landing"), env),
            s3_endpoint_url=_env("LAKEHOUSE_S3_ENDPOINT_URL", "", env),
            s3_region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1", env), env),
            s3_access_key=_env("AWS_ACCESS_KEY_ID", "", env),
            s3_secret_key=_env("AWS_SECRET_ACCESS_KEY", "", env),
            extra_jars=tuple(j for j in extra.split(",") if j),
            reference_grace_days=_int_env("LAKEHOUSE_REFERENCE_GRACE_DAYS", 3, env),
            extract_lookback_days=_int_env("LAKEHOUSE_EXTRACT_LOOKBACK_DAYS", 2, env),
            stream_watermark_minutes=_int_env("LAKEHOUSE_STREAM_WATERMARK_MINUTES", 60, env),
            timezone=_env("LAKEHOUSE_TIMEZONE", "UTC", env),
            slack_webhook_url=_env("LAKEHOUSE_SLACK_WEBHOOK_URL", "", env),
            pushgateway_url=_env("LAKEHOUSE_PUSHGATEWAY_URL", "", env),
            dbt_target=_choice_env("LAKEHOUSE_DBT_TARGET", DBT_TARGETS, env),
            pyspark_python=_env("PYSPARK_PYTHON", sys.executable, env),
            thrift_host=_env("LAKEHOUSE_THRIFT_HOST", "127.0.0.1", env),
            thrift_port=_int_env("LAKEHOUSE_THRIFT_PORT", 10000, env),
            min_executors=_int_env("LAKEHOUSE_SPARK_MIN_EXECUTORS", 1, env),
            executor_wait_s=_int_env("LAKEHOUSE_SPARK_EXECUTOR_WAIT_S", 120, env),
            codegen_min_rows=_int_env("LAKEHOUSE_CODEGEN_MIN_ROWS", 10_000, env),
        )

    def with_overrides(self, **overrides: object) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v not in (None, "")})

    @property
    def source_db_path(self) -> Path:
        """The embedded operational database file (only meaningful for a SQLite source)."""
        if not self.source_url.startswith("jdbc:sqlite:"):
            raise LakehouseSetupError(
                f"LAKEHOUSE_SOURCE_URL={self.source_url} is not a SQLite file; "
                "the generator writes only the embedded SQLite source"
            )
        return Path(self.source_url.removeprefix("jdbc:sqlite:"))

    @property
    def spark_conf_dir(self) -> Path:
        return self.home / "spark-conf"

    @property
    def run_thrift_port(self) -> int:
        """The loopback port a run's Spark serves dbt on (dbt's ``embedded`` target), when it is
        free: one per home, so dbt's profile is the same run after run (dbt re-parses the whole
        project when it changes). Below Linux's ephemeral range (32768-60999), so the kernel
        does not hand it to a client socket."""
        return 20000 + zlib.crc32(str(self.home).encode()) % 10000

    @property
    def scratch_dir(self) -> Path:
        """Spark's and Derby's side files, kept out of the working directory."""
        return self.home / "spark"
