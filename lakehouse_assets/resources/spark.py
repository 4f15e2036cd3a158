"""The Spark session every PySpark asset uses: local by default, a cluster by configuration."""

from __future__ import annotations

from typing import IO, Any

from dagster import Failure, InitResourceContext
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from spark_jobs.session import (
    build_session,
    hold_lock,
    prepare,
    return_free_heap,
    serve_thrift,
    write_spark_defaults,
)
from spark_jobs.settings import EndpointUnavailable, LakehouseSetupError, Settings


class SparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy session, on the ``lakehouse`` Iceberg catalog: one per run
    process, started on first use, so runs without PySpark assets start no JVM.

    Endpoints come from the environment at run time (``SPARK_MASTER``, ``LAKEHOUSE_*``; see
    the README, read by ``spark_jobs.settings``); a field set here wins over the environment.
    ``spark_config`` adds to the configuration ``spark_jobs/session.py`` computes (e.g.
    ``{"spark.executor.memory": "4g"}``).
    """

    spark_config: dict[str, Any] = Field(
        default_factory=dict, description="Spark settings added to the project's configuration."
    )
    master: str | None = Field(default=None, description="Overrides SPARK_MASTER.")
    driver_memory: str | None = Field(default=None, description="Overrides SPARK_DRIVER_MEMORY.")

    _lock: IO | None = PrivateAttr(default=None)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False  # this project's subclass, not the library's resource as shipped

    def settings(self) -> Settings:
        return Settings.from_env().with_overrides(
            spark_master=self.master, driver_memory=self.driver_memory
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Fail before any step starts, with one line saying what to install or set, and
        # without retries: a missing jar is still missing a minute later.
        try:
            settings = self.settings()
            prepare(settings)
        except LakehouseSetupError as exc:
            # A run that fails here never reaches a step, so neither the steps' retry policy
            # nor `retry_on_asset_or_op_failure: false` would stop the daemon from retrying
            # it: the run's own tag does.
            if context.instance is not None and context.run_id is not None:
                context.instance.add_run_tags(context.run_id, {"dagster/max_retries": "0"})
            raise Failure(str(exc), allow_retries=False) from None
        self._lock = hold_embedded_catalog(settings, context)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def _init_session(self) -> None:
        if self._spark_session is None:
            extra = {k: str(v) for k, v in self.spark_config.items()}
            try:
                self._spark_session = build_session(self.settings(), "lakehouse-dagster", extra)
            except EndpointUnavailable as exc:
                # The session already waited for the cluster: one line naming the endpoint,
                # no step retry. Nothing was written, so a rerun once it is up succeeds.
                raise Failure(str(exc), allow_retries=False) from None

    @property
    def session(self) -> SparkSession:
        """The run's session (``spark_session``, by its shorter name)."""
        return self.spark_session

    def thrift_port(self) -> int:
        """The loopback port where this run's session answers dbt-spark's thrift method,
        started on first use: dbt's models run in this JVM, not in a Spark of their own."""
        try:
            return serve_thrift(self.session, self.settings())
        except EndpointUnavailable as exc:
            raise Failure(str(exc), allow_retries=False) from None

    def return_free_heap(self) -> None:
        """Hand back the heap the run's PySpark steps no longer use, before dbt starts beside
        this JVM (dbt's process; with the ``session`` target, its own JVM too). Nothing when
        no step started the session: a Gold-only run starts none to collect it."""
        if self._spark_session is not None:
            return_free_heap(self._spark_session)

    def conf_dir_for_external_sessions(self) -> str:
        """``SPARK_CONF_DIR`` for processes that start their own Spark (dbt-spark)."""
        return str(write_spark_defaults(self.settings()))


def hold_embedded_catalog(settings: Settings, context: InitResourceContext) -> IO | None:
    """One run at a time writes the embedded SQLite catalog, however it was launched.

    SQLite takes one writer: two runs committing at once fail with SQLITE_BUSY. The daemon's
    queue already runs one at a time, but the CLI, tests and `materialize` do not go through
    it, so every run takes this lock on ``$LAKEHOUSE_HOME/catalog.lock`` for its duration. The
    kernel drops it when the process ends, also after `kill -9`, so it can never be left stuck.
    A PostgreSQL catalog takes concurrent commits and needs no lock.
    """
    if not settings.catalog_uri.startswith("jdbc:sqlite:"):
        return None
    log = context.log
    waiting = "another run is writing the embedded catalog; waiting for it"
    return hold_lock(settings.home / "catalog.lock", (lambda: log.info(waiting)) if log else None)
