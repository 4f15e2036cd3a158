"""One temporary lakehouse and one Spark session for the whole test session.

Spark's catalog settings are fixed when its JVM starts, so every test shares one
``LAKEHOUSE_HOME``. Tests that write tables use their own dates (and, for the operational
database, their own key ranges), which also proves that a run leaves other days untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="lakehouse-test-"))
os.environ["LAKEHOUSE_HOME"] = str(_HOME)
os.environ["DAGSTER_HOME"] = str(_HOME / "dagster")
os.environ.setdefault("SPARK_MASTER", "local[2]")
os.environ.setdefault("SPARK_DRIVER_MEMORY", "2g")
(_HOME / "dagster").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def settings():
    from spark_jobs.settings import Settings

    return Settings.from_env()


@pytest.fixture(scope="session")
def spark(settings):
    from spark_jobs.session import build_session

    session = build_session(settings, app_name="lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def catalog(settings):
    from lakehouse_assets.resources.catalog import open_catalog

    return open_catalog(settings)
