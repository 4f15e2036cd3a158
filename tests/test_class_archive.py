"""The class archive every run's driver JVM maps (``spark_jobs/class_archive.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_jobs import class_archive
from spark_jobs.settings import Settings


def test_the_sessions_driver_maps_the_archive_make_setup_built(spark, settings):
    """The test session's JVM was started as every run's is: it maps the archive `make setup`
    built for this Java and class path (the kernel's own list of the JVM's mappings; a JVM
    that refused the archive has unmapped it)."""
    archive = class_archive.archive_path(settings)
    assert archive is not None and archive.is_file(), f"no {archive}: run `make setup`"
    jvm = spark.sparkContext._gateway.proc.pid  # pyspark's launcher keeps the JVM's Popen
    assert os.path.realpath(archive) in Path(f"/proc/{jvm}/maps").read_text()


@pytest.mark.fast
def test_the_archive_is_built_for_the_class_path_a_run_has():
    """`make setup` trains on a scratch home (never the user's catalog or warehouse) with the
    class path every run on the embedded default has: the archive it names is theirs."""
    env = {**os.environ, "LAKEHOUSE_WAREHOUSE": "file:///data/warehouse"}
    training = class_archive.training_env(env, "/tmp/scratch")
    assert training["LAKEHOUSE_HOME"] == "/tmp/scratch"
    assert "LAKEHOUSE_WAREHOUSE" not in training
    run = Settings.from_env(env)
    assert class_archive.archive_path(Settings.from_env(training)) == (
        class_archive.archive_path(run)
    )


@pytest.mark.fast
def test_another_class_path_is_another_archive_and_only_a_built_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(class_archive, "ARCHIVE_DIR", tmp_path / "archives")
    jar = tmp_path / "extra.jar"
    jar.write_bytes(b"PK")
    home = {"LAKEHOUSE_HOME": str(tmp_path / "home")}
    plain = Settings.from_env(home)
    extra = Settings.from_env({**home, "LAKEHOUSE_EXTRA_JARS": str(jar)})
    assert class_archive.archive_path(plain) != class_archive.archive_path(extra)
    assert class_archive.java_options(extra) == ""  # none built: the JVM gets no option
    built = class_archive.archive_path(extra)
    assert built is not None
    built.parent.mkdir(parents=True)
    built.write_bytes(b"an archive")
    assert f"-XX:SharedArchiveFile={built}" in class_archive.java_options(extra)
    jar.write_bytes(b"PK changed")  # an upgraded jar: that archive would not fit it
    assert class_archive.archive_path(extra) != built
    assert class_archive.java_options(extra) == ""
    big = Settings.from_env({**home, "SPARK_DRIVER_MEMORY": "48g"})
    assert class_archive.archive_path(big) != class_archive.archive_path(plain)
