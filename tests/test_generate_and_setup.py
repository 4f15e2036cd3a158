"""The generator is deterministic and honest about its dirt; misconfiguration fails fast."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from spark_jobs.session import required_jars, spark_conf
from spark_jobs.settings import EndpointUnavailable, LakehouseSetupError, Settings
from spark_jobs.window import DayWindow, parse_window, window_parser
from tools.generate import Dirt, generate
from tools.screenshot import free_port

# Spark and Dagster in this process only: no servers, no dbt (make test-fast).
pytestmark = pytest.mark.fast


def fingerprint(home: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(home.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(home).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def settings_in(home: Path) -> Settings:
    base = Settings.from_env()
    return replace(
        base,
        home=home,
        source_url=f"jdbc:sqlite:{home / 'source.db'}",
        landing=str(home / "landing"),
    )


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = (settings_in(tmp_path / n) for n in "abc")
    generate(a, date(2026, 1, 1), 2, "tiny", seed=3)
    generate(b, date(2026, 1, 1), 2, "tiny", seed=3)
    generate(c, date(2026, 1, 1), 2, "tiny", seed=4)
    assert fingerprint(a.home) == fingerprint(b.home) != fingerprint(c.home)


def test_manifest_counts_match_what_was_written(tmp_path):
    s = settings_in(tmp_path)
    manifest = generate(s, date(2026, 1, 1), 3, "tiny", seed=5)
    with sqlite3.connect(s.source_db_path) as con:
        per_day = dict(
            con.execute("SELECT substr(updated_at, 1, 10), count(*) FROM orders GROUP BY 1")
        )
        negative = con.execute("SELECT count(*) FROM orders WHERE amount < 0").fetchone()[0]
    assert per_day == {d: v["orders"]["rows"] for d, v in manifest.per_day.items()}
    assert negative == sum(v["orders"]["negative_amount"] for v in manifest.per_day.values()) > 0
    day = Path(s.landing) / "clickstream" / "2026-01-02" / "part-00000.jsonl"
    lines = day.read_bytes().splitlines()
    assert len(lines) == manifest.per_day["2026-01-02"]["clickstream"]["lines"]


def test_clean_data_has_no_dirt(tmp_path):
    manifest = generate(settings_in(tmp_path), date(2026, 1, 1), 2, "tiny", dirt=Dirt.none())
    dirt = {
        k
        for day in manifest.per_day.values()
        for src in day.values()
        for k, v in src.items()
        if v and k not in ("rows", "lines", "events")
    }
    assert dirt == set()


def test_missing_driver_names_the_package(monkeypatch):
    from spark_jobs import session

    monkeypatch.setattr(session, "SQLITE_JAR", Path("/nonexistent/sqlite-jdbc.jar"))
    with pytest.raises(LakehouseSetupError, match="apt-get install libxerial-sqlite-jdbc-java"):
        required_jars(Settings.from_env())


def test_missing_java_says_what_to_install(monkeypatch):
    from spark_jobs import session

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LakehouseSetupError, match="openjdk-17-jre-headless"):
        session.check_java()


def test_an_unreachable_spark_master_fails_at_once_naming_it():
    from spark_jobs import session

    closed = free_port()  # nothing listens there
    master = f"spark://127.0.0.1:{closed},127.0.0.1:{free_port()}"  # HA form: every one down
    with pytest.raises(EndpointUnavailable, match=f"the Spark master {master} does not answer"):
        session.check_master(master)
    session.check_master("local[2]")  # not a cluster: nothing to reach


def test_a_thrift_target_whose_server_is_down_fails_the_step_naming_it():
    from dagster import Failure

    from lakehouse_assets.gold.assets import check_thrift_server

    port = free_port()
    settings = replace(Settings.from_env(), dbt_target="thrift", thrift_port=port)
    with pytest.raises(Failure, match=f"Spark Thrift server at 127.0.0.1:{port} does not answer"):
        check_thrift_server(settings)
    check_thrift_server(replace(settings, dbt_target="embedded"))  # the run's own server


def test_cluster_waits_are_configuration():
    settings = Settings.from_env(
        {"LAKEHOUSE_SPARK_MIN_EXECUTORS": "2", "LAKEHOUSE_SPARK_EXECUTOR_WAIT_S": "30"}
    )
    assert (settings.min_executors, settings.executor_wait_s) == (2, 30)
    with pytest.raises(LakehouseSetupError, match="LAKEHOUSE_SPARK_MIN_EXECUTORS='two'"):
        Settings.from_env({"LAKEHOUSE_SPARK_MIN_EXECUTORS": "two"})


def test_catalog_and_source_are_configuration(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_CATALOG_URI", "jdbc:postgresql://db:5432/iceberg")
    monkeypatch.setenv("LAKEHOUSE_CATALOG_USER", "iceberg")
    monkeypatch.setenv("SPARK_MASTER", "spark://spark-master:7077")
    conf = spark_conf(Settings.from_env())
    assert conf["spark.sql.catalog.lakehouse.uri"] == "jdbc:postgresql://db:5432/iceberg"
    assert conf["spark.sql.catalog.lakehouse.jdbc.user"] == "iceberg"
    assert "jdbc.journal_mode" not in " ".join(conf)  # WAL is a SQLite matter
    assert conf["spark.master"] == "spark://spark-master:7077"
    assert "/usr/share/java/postgresql.jar" in conf["spark.jars"]
    assert "spark.memory.fraction" not in conf  # a cluster's executors keep Spark's default


def test_a_local_run_has_a_1536m_heap_three_quarters_of_it_sparks():
    # In local mode the driver's heap is the executors' too: 1.5 GiB, three quarters of it
    # Spark's to execute and cache in, kept a 1 M-event day's tree under 3 GB (BENCHMARKS.md).
    conf = spark_conf(Settings.from_env({}))
    assert (conf["spark.driver.memory"], conf["spark.memory.fraction"]) == ("1536m", "0.75")


def test_job_command_line_takes_a_day_or_a_range():
    def parse_args(description: str, argv: list[str]) -> DayWindow:
        return parse_window(window_parser(description), argv)[0]

    assert parse_args("t", ["--date", "2026-01-05"]) == DayWindow.of_day(date(2026, 1, 5))
    assert parse_args("t", ["--start", "2026-01-01", "--end", "2026-01-03"]).days[-1] == date(
        2026, 1, 3
    )
    with pytest.raises(SystemExit):
        parse_args("t", ["--date", "2026-13-01"])


def test_the_demo_days_end_yesterday_in_the_partitions_timezone():
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from lakehouse_assets.partitions import TIMEZONE, daily_partitions
    from tools.demo import default_start

    yesterday = datetime.now(ZoneInfo(TIMEZONE)).date() - timedelta(days=1)
    assert default_start(3) == yesterday - timedelta(days=2)
    assert daily_partitions.get_last_partition_key() == yesterday.isoformat()
    assert default_start(10_000) == date(2026, 1, 1)  # never before the first partition


def test_the_demo_prints_each_step_as_dagster_logs_it(capsys):
    from tools.demo import Progress

    run = "b1262aaf-c6cf-4f01-b74b-9c8db17c3ac7"
    progress = Progress()
    for event in ("STEP_START", "STEP_SUCCESS"):
        progress.feed(
            f"2026-12-01 22:04:11 +0000 - dagster - DEBUG - daily_lakehouse - {run} - 19311 - "
            f'silver_orders - {event} - Started execution of step "silver_orders".\n'
        )
    progress.feed("2026-12-01 22:04:11 +0000 - dagster - DEBUG - a line about something else\n")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("s  ", 1)[1] for line in lines] == [
        "silver_orders started",
        "silver_orders done (0.0s)",
    ]


def test_a_wrong_spark_job_name_fails_at_once_with_the_valid_ones():
    import subprocess

    done = subprocess.run(
        ["make", "run", "JOB=nope"], cwd=Path(__file__).parents[1], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no Spark job 'nope'; the jobs are: bronze silver" in done.stdout
    assert "uv" not in done.stdout + done.stderr  # no setup ran before the answer


def test_the_demo_empties_only_the_embedded_lakehouse(tmp_path, monkeypatch):
    from tools.demo import embedded

    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("LAKEHOUSE_CATALOG_URI", "LAKEHOUSE_WAREHOUSE", "LAKEHOUSE_LANDING"):
        monkeypatch.delenv(name, raising=False)
    assert embedded(Settings.from_env())
    monkeypatch.setenv("LAKEHOUSE_CATALOG_URI", "jdbc:postgresql://db:5432/iceberg")
    assert not embedded(Settings.from_env())  # a shared catalog is never the demo's to empty
    monkeypatch.delenv("LAKEHOUSE_CATALOG_URI")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://bucket/warehouse")
    assert not embedded(Settings.from_env())
    monkeypatch.delenv("LAKEHOUSE_WAREHOUSE")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path.parent / "elsewhere"))
    assert not embedded(Settings.from_env())


def test_a_job_run_from_the_executors_zip_starts_again(tmp_path):
    # `make run` after any run: spark-submit puts $LAKEHOUSE_HOME/spark/spark_jobs.zip
    # (spark.submit.pyFiles) ahead of the repo, so spark_jobs imports from the zip, and
    # rebuilding the zip from its own folder failed ("Not a directory: .../spark_jobs.zip/...").
    import subprocess
    import sys

    from spark_jobs.session import package_zip

    settings = replace(Settings.from_env(), home=tmp_path)
    (tmp_path / "spark").mkdir()
    archive = package_zip(settings)
    code = (
        "import sys; from dataclasses import replace; from pathlib import Path; "
        f"sys.path.insert(0, {str(archive)!r}); "
        "from spark_jobs import session, settings; "
        "assert session.__file__.startswith(sys.path[0]), session.__file__; "
        f"home = Path({str(tmp_path)!r}); "
        "print(session.package_zip(replace(settings.Settings.from_env(), home=home)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(archive) and archive.stat().st_size > 1000


def test_only_the_runs_own_session_is_shared_by_its_thrift_clients(tmp_path):
    # The run's session serves its own dbt (one catalog, one SQLite connection); a server
    # started from spark-defaults.conf serves many runs at once, whose dbt temp views
    # (<model>__dbt_tmp) must never meet in one session.
    # Its temporary views are kept as analysed plans (what dbt leaves there is resolved at
    # every connection's close); a spark-sql shell's views read the tables as they are.
    from spark_jobs.session import SINGLE_SESSION, VIEWS_AS_PLANS, write_spark_defaults

    settings = replace(Settings.from_env(), home=tmp_path)
    embedded = replace(settings, dbt_target="embedded")
    assert spark_conf(embedded)[SINGLE_SESSION] == spark_conf(embedded)[VIEWS_AS_PLANS] == "true"
    for shared in (SINGLE_SESSION, VIEWS_AS_PLANS):
        assert shared not in spark_conf(replace(settings, dbt_target="thrift"))
    for target in ("embedded", "thrift", "session"):
        folder = write_spark_defaults(replace(settings, dbt_target=target))
        lines = (folder / "spark-defaults.conf").read_text().splitlines()
        assert [line for line in lines if line.startswith(SINGLE_SESSION)] == [
            f"{SINGLE_SESSION} false"
        ]
        assert not [line for line in lines if line.startswith(VIEWS_AS_PLANS)]


def test_a_run_serves_dbt_on_its_homes_port_unless_another_process_holds_it(tmp_path):
    # dbt hashes its profile, port included, into its parse state: a port of the kernel's
    # choosing each run would make dbt re-parse the whole project every run.
    import socket

    from spark_jobs.session import thrift_port_to_bind

    def port_of(home: str) -> int:
        return Settings.from_env({"LAKEHOUSE_HOME": home}).run_thrift_port

    assert port_of("/srv/lakehouse") == port_of("/srv/lakehouse/")  # the home's, run after run
    assert port_of("/srv/lakehouse") != port_of("/srv/lakehouse-staging")  # another home's
    assert {port_of(f"/srv/h{n}") // 10000 for n in range(50)} == {2}  # below the ephemeral range
    settings = replace(Settings.from_env(), home=tmp_path)
    port = settings.run_thrift_port
    assert thrift_port_to_bind(settings) == port
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        assert thrift_port_to_bind(settings) == 0  # the kernel picks: slower dbt, never a clash


def test_dbt_keeps_its_parsed_project_and_a_week_of_artifacts_in_the_home(tmp_path):
    import os
    import time

    from lakehouse_assets.resources.dbt import PARTIAL_PARSE, _keep_parsed_project, _prune

    targets = tmp_path / "dbt" / "target"
    old, new = targets / "gold_marts-aaaaaaa-1111111", targets / "gold_marts-bbbbbbb-2222222"
    for invocation in (old, new):
        invocation.mkdir(parents=True)
        (invocation / "dbt.log").write_text("{}")
    (new / PARTIAL_PARSE).write_bytes(b"parsed")
    eight_days_ago = time.time() - 8 * 86400
    os.utime(old, (eight_days_ago, eight_days_ago))

    _keep_parsed_project(new, targets)
    _keep_parsed_project(old, targets)  # an invocation that never parsed changes nothing
    _prune(targets, older_than=timedelta(days=7))
    assert sorted(p.name for p in targets.iterdir()) == [new.name, PARTIAL_PARSE]
    assert (targets / PARTIAL_PARSE).read_bytes() == b"parsed"
    _prune(tmp_path / "nowhere", older_than=timedelta(days=7))  # before dbt's first run


def test_the_window_reaches_dbt_in_the_environment_and_none_leaks_in():
    from lakehouse_assets.gold.assets import _window_environment

    window = DayWindow(date(2026, 5, 4), date(2026, 5, 6))
    assert _window_environment(window) == {
        "LAKEHOUSE_WINDOW_START_DATE": "2026-05-04",
        "LAKEHOUSE_WINDOW_END_DATE": "2026-05-06",
    }
    # An unpartitioned run builds every day, whatever the shell has set.
    assert set(_window_environment(None).values()) == {""}


def test_the_environment_is_compiled_to_bytecode():
    """`make env` compiles every installed module (`uv sync --compile-bytecode`). Where
    PYTHONDONTWRITEBYTECODE is set (CI, containers) nothing else caches bytecode, and every
    process, each run and each dbt invocation, compiled Dagster and dbt from source again."""
    import importlib.util
    import re
    import sys

    import dagster
    import dbt.version

    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    recipe = re.search(r"^env:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe and re.search(r"\bsync\b.*--compile-bytecode", recipe.group(1))
    if sys.dont_write_bytecode and not sys.pycache_prefix:  # only then is it make env's work
        for module in (dagster, dbt.version):
            assert module.__file__
            assert Path(importlib.util.cache_from_source(module.__file__)).is_file(), module
