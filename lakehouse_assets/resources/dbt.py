"""The dbt-spark project behind the Gold models, and the resource that runs it."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import timedelta
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster import AssetExecutionContext
from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from spark_jobs.settings import REPO_ROOT, Settings

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` the manifest is rebuilt on load; elsewhere `make setup` builds it.
dbt_project.prepare_if_dev()

# The dbt installed beside this Python (the project's venv), also when the venv is not on PATH.
_VENV_DBT = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_VENV_DBT) if _VENV_DBT.is_file() else (shutil.which("dbt") or "dbt")


class LakehouseDbtResource(DbtCliResource):
    """dbt, pointed at the run's Spark through its own environment.

    The ``embedded`` output (the default) is dbt-spark's thrift method on the port where the
    run's own session answers (``LAKEHOUSE_RUN_THRIFT_PORT``), so dbt starts no JVM. The
    ``session`` output starts Spark inside dbt; ``SPARK_CONF_DIR`` points it at the
    ``spark-defaults.conf`` the run's Spark resource wrote, so both use exactly the same
    catalog, jars and master. Both are set for the dbt process only: dagster-dbt builds the
    child's environment from this process's when it starts it, and they are restored at once.
    """

    def build(
        self,
        args: Sequence[str],
        context: AssetExecutionContext,
        environment: dict[str, str],
        home: Path,
        keep_parse: bool = True,
    ) -> Iterator:
        """The events of ``dbt <args>``. Its artifacts (manifest, run_results.json, dbt.log)
        go to ``<home>/dbt/target/<step>-<run>-<invocation>``, kept for a week. With
        ``keep_parse``, its parsed project is kept for the next invocation: only when the next
        one will see the same profile (a run on a fallback Thrift port would leave a parse
        state no later run can use)."""
        targets = home / "dbt" / "target"
        # "buildable": a test runs with the step that builds all its models (or their
        # ancestors), not with the first step that builds one of them. A dimension's test
        # against fct_orders must wait for the dimension's own rebuild; dbt's default
        # ("eager") would run it with fct_orders, against the dimension's previous state.
        # Dagster replaces it with "empty" when it runs a subset of the checks.
        with _environment(
            **environment, DBT_INDIRECT_SELECTION="buildable", DBT_TARGET_PATH=str(targets)
        ):
            invocation = self.cli(list(args), context=context)
        try:
            yield from invocation.stream()
        finally:
            # Housekeeping: a failure here (a full disk, a concurrent prune) must neither fail
            # the step nor replace dbt's own error (its SQLITE_BUSY is retried, for one).
            with suppress(OSError):
                if keep_parse:
                    _keep_parsed_project(invocation.target_path, targets)
                _prune(targets, older_than=ARTIFACTS_KEPT)

    # Two things dagster-dbt does before every invocation that this project does not need,
    # 7 s of each run (measured on the 2-core box) on top of dbt's own start. Both are
    # dagster-dbt internals, pinned by uv.lock; if an upgrade renames them, these overrides
    # stop applying and runs get slower, never wrong.

    @cached_property
    def _cli_version(self) -> version.Version:
        # dagster-dbt asks `dbt --version` in a subprocess (4 s of dbt's imports) to tell dbt
        # Core from Fusion. The executable is this venv's dbt: its dbt-core is installed here.
        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):  # pyright: ignore[reportIncompatibleMethodOverride]
        # An adapter handle (2.5 s: profile, project, macros) that only `fetch_column_metadata`
        # and `fetch_row_counts` use; Gold reads columns and counts from Iceberg (pyiceberg).
        return None


ARTIFACTS_KEPT = timedelta(days=7)
PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's parsed project, in its target folder


def _keep_parsed_project(invocation_target: Path, targets: Path) -> None:
    """dbt's parsed project (``partial_parse.msgpack``), where dagster-dbt looks for it before
    the next invocation: dbt then re-parses only the files that changed (3 s less a run).
    dbt checks it against the project, profile and vars, and parses anew when they differ."""
    parsed = invocation_target / PARTIAL_PARSE
    if parsed.is_file():
        staged = targets / f".{PARTIAL_PARSE}.{os.getpid()}"
        shutil.copyfile(parsed, staged)
        staged.replace(targets / PARTIAL_PARSE)  # atomic: a concurrent reader sees one whole


def _prune(targets: Path, older_than: timedelta) -> None:
    cutoff = time.time() - older_than.total_seconds()
    for invocation in targets.iterdir() if targets.is_dir() else ():
        if invocation.is_dir() and invocation.stat().st_mtime < cutoff:
            shutil.rmtree(invocation, ignore_errors=True)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


dbt_resource = LakehouseDbtResource(
    project_dir=str(DBT_PROJECT_DIR),
    profiles_dir=str(DBT_PROJECT_DIR),
    dbt_executable=DBT_EXECUTABLE,
    # The profile's output (embedded, thrift or session), from LAKEHOUSE_DBT_TARGET via Settings.
    target=Settings.from_env().dbt_target,
)
