"""The class archive every run's driver JVM maps (``spark_jobs/class_archive.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_jobs import class_archive
from spark_jobs.settings import Settings


def test_the_sessions_driver_maps_the_archive_make_setup_built(spark, settings):
    """The test session's JVM was started as every run's is: it maps the archive `make setup`
    built for this Java and class path (the kernel's own list of the JVM's mappings)."""
    archive = class_archive.archive_path(settings)
    assert archive is not None and archive.is_file(), f"no {archive}: run `make setup`"
    jvm = spark.sparkContext._gateway.proc.pid  # pyspark's launcher keeps the JVM's Popen
    assert str(archive) in Path(f"/proc/{jvm}/maps").read_text()


@pytest.mark.fast
def test_another_class_path_is_another_archive_and_none_is_named_before_it_exists(tmp_path):
    jar = tmp_path / "extra.jar"
    jar.write_bytes(b"PK")
    home = {"LAKEHOUSE_HOME": str(tmp_path / "home")}
    plain = Settings.from_env(home)
    extra = Settings.from_env({**home, "LAKEHOUSE_EXTRA_JARS": str(jar)})
    assert class_archive.archive_path(plain) != class_archive.archive_path(extra)
    before = class_archive.archive_path(extra)
    jar.write_bytes(b"PK changed")  # an upgraded jar: the old archive would not fit it
    assert class_archive.archive_path(extra) != before
    assert class_archive.java_options(extra) == ""  # never built: the JVM gets no option
