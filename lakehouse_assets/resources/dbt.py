"""The dbt-spark project behind the Gold models."""

from __future__ import annotations

from dagster_dbt import DbtCliResource, DbtProject

from spark_jobs.settings import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` the manifest is rebuilt on load; elsewhere `make setup` builds it.
dbt_project.prepare_if_dev()

dbt_resource = DbtCliResource(project_dir=dbt_project)
