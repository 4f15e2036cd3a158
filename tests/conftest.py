"""One temporary lakehouse and one Spark session per test process (each xdist worker).

Spark's catalog settings are fixed when its JVM starts, so the tests of one process share one
``LAKEHOUSE_HOME``: those that write tables use their own dates (and, for the operational
database, their own key ranges), which also proves that a run leaves other days untouched.
Tests that start processes of their own (the CLI, the daemon, spark-submit, the webserver)
give each its own home. The environment is set when pytest starts, before any test module
imports the code location, and restored when it ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    home = config.stash[HOME] = Path(tempfile.mkdtemp(prefix="lakehouse-test-"))
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    env = pytest.MonkeyPatch()
    env.setenv("LAKEHOUSE_HOME", str(home))
    env.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name, default in (("SPARK_MASTER", "local[2]"), ("SPARK_DRIVER_MEMORY", "1536m")):
        env.setenv(name, os.environ.get(name) or default)  # a caller's choice wins
    config.add_cleanup(env.undo)


KEPT = "lakehouse_home"  # a worker's kept home, in its output to xdist's controller


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The home goes when every test passed (a full run leaves ~100 MB of tables); a failure
    keeps it for inspection, and says where. Under xdist (`make test`) each worker has its
    own home and its own verdict; a worker's output goes nowhere, so the controller names
    the homes kept (``pytest_testnodedown``), and its own, which no test used, goes."""
    config = session.config
    home = config.stash.get(HOME, None)
    if home is None:
        return
    passed = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    controller = bool(getattr(config.option, "numprocesses", None)) and not hasattr(
        config, "workerinput"
    )
    if passed or controller:
        shutil.rmtree(home, ignore_errors=True)
    elif hasattr(config, "workeroutput"):
        config.workeroutput[KEPT] = str(home)  # pyright: ignore[reportAttributeAccessIssue]
    else:
        say_kept(config, home)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent without it
def pytest_testnodedown(node, error) -> None:
    if kept := getattr(node, "workeroutput", {}).get(KEPT):
        say_kept(node.config, kept)


def say_kept(config: pytest.Config, home: object) -> None:
    if reporter := config.pluginmanager.get_plugin("terminalreporter"):
        reporter.write_line(f"\nthe tests' lakehouse is kept for inspection: {home}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests not marked ``fast`` are ``slow``: `make test-fast` runs ``-m fast`` only."""
    for item in items:
        if item.get_closest_marker("fast") is None:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="module")
def s3_server():
    """A real S3 API (moto's server) on loopback; no AWS is reachable or needed here."""
    from moto.server import ThreadedMotoServer

    from tools.screenshot import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
