"""The Spark session every PySpark asset uses: local by default, a cluster by configuration."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from spark_jobs.session import build_session, prepare, write_spark_defaults
from spark_jobs.settings import Settings


class SparkResource(ConfigurableResource):
    """One Spark session per run process, on the ``lakehouse`` Iceberg catalog.

    Endpoints come from the environment at run time (``SPARK_MASTER``, ``LAKEHOUSE_*``; see
    the README); a field set here wins over the environment.
    """

    master: str | None = Field(default=None, description="Overrides SPARK_MASTER.")
    driver_memory: str | None = Field(default=None, description="Overrides SPARK_DRIVER_MEMORY.")

    _session: SparkSession | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings.from_env().with_overrides(
            spark_master=self.master, driver_memory=self.driver_memory
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Fail before any step starts, with one line saying what to install or set.
        prepare(self.settings())

    @property
    def session(self) -> SparkSession:
        """Started on first use, so runs without PySpark assets start no JVM."""
        if self._session is None:
            self._session = build_session(self.settings(), app_name="lakehouse-dagster")
        return self._session

    def conf_dir_for_external_sessions(self) -> str:
        """``SPARK_CONF_DIR`` for processes that start their own Spark (dbt-spark)."""
        return str(write_spark_defaults(self.settings()))
