"""A class-data-sharing archive for the run's driver JVM (Java's AppCDS; Java 17, as required).

A cold JVM loads, parses and verifies some twenty thousand classes (Spark, Iceberg, Parquet,
Hive's Thrift server) as a run first uses them. ``make setup`` runs a short workload that
touches those paths once, in a JVM that writes what it loaded to an archive when it exits
(``-XX:ArchiveClassesAtExit``); every later driver JVM with the same Java and class path maps
that archive (``-XX:SharedArchiveFile``) instead of loading the classes again. A bare
``spark-submit`` took 4.2 s with such an archive against 6.7 s without; a tiny day's run about
4 s less (README, "What keeps a run short").

The archive is named by what it depends on (the ``java`` binary, the driver's class path and
Spark's jars, each by path, size and time), next to the Python environment whose jars it
holds, and shared by every home. A changed jar or Java is a new name: no archive until the next
``make setup``, and never a stale one (which the JVM would refuse). Without one, a run starts
as it always did.

    python -m spark_jobs.class_archive     # build it if missing (make setup does)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_jobs.settings import LakehouseSetupError, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ARCHIVE_DIR = Path(sys.prefix) / "share" / "lakehouse"
TRAINING_TIMEOUT_S = 600


def _java() -> Path | None:
    """The ``java`` Spark's launcher starts: ``$JAVA_HOME/bin/java``, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).is_file() else None


def _spark_home() -> Path:
    import pyspark

    return Path(os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent)


# What Spark's launcher appends to the class path after its jars: set for a run and not for
# the archive's build (or the other way), the class path differs under the same jars.
CLASS_PATH_ENV = ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "SPARK_DIST_CLASSPATH")
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _class_path(settings: Settings) -> list[Path]:
    """The driver JVM's class path as Spark's launcher builds it: ``spark.driver.extraClassPath``
    (the project's jars), the configuration folder, then Spark's own jars."""
    from spark_jobs.session import required_jars

    home = _spark_home()
    conf = Path(os.environ.get("SPARK_CONF_DIR") or home / "conf")
    return [*required_jars(settings), conf, *sorted((home / "jars").glob("*.jar"))]


def _large_heap(memory: str) -> bool:
    """A heap of 32 GiB or more: the JVM then stores object pointers in full, and an archive
    written with compressed ones does not fit it."""
    text = memory.strip().lower().removesuffix("b")
    number, unit = (text[:-1], text[-1]) if text[-1:] in UNITS else (text, "")
    return number.isdigit() and int(number) * UNITS.get(unit, 1) >= 32 << 30


def archive_path(settings: Settings) -> Path | None:
    """Where this Java and class path's archive is (or would be); None without a Java."""
    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256()
    for entry in (java, *_class_path(settings)):
        stat = entry.stat() if entry.exists() else None
        digest.update(f"{entry}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    for name in CLASS_PATH_ENV:
        digest.update(f"{name}={os.environ.get(name, '')}\n".encode())
    digest.update(f"large heap: {_large_heap(settings.driver_memory)}".encode())
    return ARCHIVE_DIR / f"spark-driver-{digest.hexdigest()[:20]}.jsa"


def java_options(settings: Settings) -> str:
    """The driver's option to map its archive, when one was built for it; else nothing."""
    path = archive_path(settings)
    if path is None or not path.is_file():
        return ""
    # An archive the JVM refuses (a class path changed in a way the name does not capture)
    # costs the time it saves, no more: without its warning on every run's output.
    # Mapped at the address it was built for, where recent Java 17 updates (17.0.15 here)
    # map it at a random one and rewrite its pointers: every page it touches written, 135 MB
    # of the archive the JVM's own memory rather than clean pages of the file, and 27 MB
    # more resident right after a start, 0.3 s more to start. Should that address be taken,
    # the JVM still maps it elsewhere. What is given up is the random placement of class
    # metadata (ASLR), not of the heap or code; a diagnostic option, hence the unlock.
    reloc = "-XX:+UnlockDiagnosticVMOptions -XX:ArchiveRelocationMode=0"
    return f"-XX:SharedArchiveFile={path} -Xlog:cds*=error {reloc}"


def _workload(spark: SparkSession, settings: Settings) -> None:
    """What a run does, in miniature: landed lines read in Python tasks, JSON parsed, rows
    ranked and checkpointed, Iceberg tables written (overwrite, MERGE, insert) and read with
    their metadata tables, an operational table read over JDBC, and the Thrift server dbt
    talks to, with one query through it."""
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F

    from spark_jobs import storage
    from spark_jobs.session import ensure_namespaces, serve_thrift
    from spark_jobs.window import DayWindow

    ensure_namespaces(spark)
    day = date(2000, 1, 1)
    window = DayWindow.of_day(day)
    landed = settings.home / "landing.jsonl"
    landed.write_text('{"id": "1", "ts": "2000-01-01T00:00:00"}\nnot json\n')
    files = storage.local_rows(
        spark, [(day, 0, str(landed))], "day date, landed_us long, path string"
    )
    lines = storage.read_landed(files, storage.LandingZone(str(settings.home)), 1)
    parsed = lines.withColumn("m", F.from_json("raw_line", "map<string,string>"))
    ranked = parsed.withColumn(
        "r", F.row_number().over(Window.partitionBy(F.col("m")["id"]).orderBy("_line_number"))
    ).localCheckpoint()
    rows = ranked.select(
        F.col("m")["id"].cast("long").alias("id"),
        F.to_timestamp(F.col("m")["ts"]).alias("updated_at"),
        F.col("_partition_date").alias("d"),
    )
    name = storage.table_name("bronze", "class_archive_probe")
    storage.replace_window(rows, name, "d", window)
    storage.merge_latest(rows.where("id IS NOT NULL"), name, "id", "d")
    storage.insert_missing(rows, name, ("id",))
    commit = storage.commit_of(spark, name)
    if commit is not None:
        storage.rows_added_per_day(spark, name, "d", commit.snapshot_id)
    storage.holds_rows(spark, name, "d", window.start, window.end)
    storage.as_of_now(spark, name).groupBy("d").count().collect()
    seen = Observation()
    observed = rows.observe(seen, F.count(F.lit(1)).alias("rows"), F.count_if(F.col("id") > 0))
    storage.replace_window(observed, name, "d", window)
    storage.observed_metrics(seen)
    source = settings.home / "source.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER, updated_at TEXT)")
    props = {"driver": "org.sqlite.JDBC"}
    spark.read.jdbc(f"jdbc:sqlite:{source}", "t", properties=props).collect()
    from pyhive import hive

    port = serve_thrift(spark, settings)
    connection = hive.connect(host="127.0.0.1", port=port, username="lakehouse-class-archive")
    try:
        cursor = connection.cursor()
        cursor.execute(f"select count(*) from {name}")
        cursor.fetchall()
    finally:
        connection.close()


def _train(target: Path) -> None:
    """Run the workload in a JVM that writes its classes to ``target`` as it exits (the child
    process of ``build``, on a scratch home)."""
    from spark_jobs.session import build_session, spark_conf

    settings = Settings.from_env()
    options = spark_conf(settings)["spark.driver.extraJavaOptions"]
    options += f" -XX:ArchiveClassesAtExit={target} -Xlog:cds*=error"  # no line per skipped class
    extra = {"spark.driver.extraJavaOptions": options}
    spark = build_session(settings, "lakehouse-class-archive", extra)
    _workload(spark, settings)
    jvm: Any = spark.sparkContext._gateway.proc  # pyright: ignore[reportOptionalMemberAccess] - pyspark's launcher keeps the JVM's Popen here
    spark.stop()
    jvm.stdin.close()  # the JVM exits on end of input: the archive is written then
    jvm.wait(timeout=TRAINING_TIMEOUT_S)


# What decides the driver's jars, kept from the caller's environment; every other lakehouse
# setting is the scratch home's own, so training never writes to the user's catalog,
# warehouse or landing zone.
KEPT = ("LAKEHOUSE_SOURCE_URL", "LAKEHOUSE_EXTRA_JARS")


def training_env(environ: Mapping[str, str], home: str) -> dict[str, str]:
    """The environment the archive is built in: a scratch ``home`` with the embedded catalog,
    so the archive is for the default class path (a PostgreSQL catalog adds a jar: another
    name, and runs on it start without an archive)."""
    env = {k: v for k, v in environ.items() if not k.startswith("LAKEHOUSE_") or k in KEPT}
    return {**env, "LAKEHOUSE_HOME": home, "SPARK_MASTER": "local[2]"}


def build() -> Path | None:
    """Build the archive for this Java and class path unless it exists; its path, or None
    when none is built here (the reason printed in one line: runs then start without one).

    A build that failed is not tried again by every later ``make setup`` (each try is up to
    ``TRAINING_TIMEOUT_S``): ``<archive>.failed`` holds why, and deleting it tries again."""
    with tempfile.TemporaryDirectory(prefix="lakehouse-class-archive-") as scratch:
        env = training_env(os.environ, scratch)
        try:
            target = archive_path(Settings.from_env(env))
        except (LakehouseSetupError, ValueError) as exc:  # a missing jar, a mistyped setting
            print(f"class archive not built ({exc}); runs start without one", file=sys.stderr)
            return None
        if target is None:
            print("class archive: no java found; runs start without one", file=sys.stderr)
            return None
        failed = target.with_suffix(".failed")
        if target.is_file():
            return target
        if failed.is_file():
            reason = failed.read_text().strip()
            print(f"class archive: not built ({reason}); delete {failed} to try again")
            return None
        reason = _train_into(target, env)
    if reason:
        print(f"class archive not built ({reason}); runs start without one", file=sys.stderr)
        with suppress(OSError):
            failed.write_text(reason + "\n")
        return None
    for old in target.parent.glob("spark-driver-*.jsa"):  # other Javas' and class paths'
        if old != target:
            old.unlink(missing_ok=True)
    return target


def _train_into(target: Path, env: dict[str, str]) -> str:
    """Train in a child process (its own process group, so a timeout or Ctrl-C takes its JVM
    too) and move the archive into place; what went wrong, or "" when it is there."""
    partial = target.with_suffix(f".{os.getpid()}.partial")
    started = time.monotonic()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen(
            [sys.executable, "-m", "spark_jobs.class_archive", "--train", str(partial)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, errors = child.communicate(timeout=TRAINING_TIMEOUT_S)
        except BaseException:  # the timeout, or Ctrl-C: nothing of the training stays behind
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
        if child.returncode != 0 or not partial.is_file():
            return (errors.strip().splitlines() or [f"exit {child.returncode}"])[-1]
        partial.replace(target)  # atomic: a JVM starting now maps a whole archive or none
    except subprocess.TimeoutExpired:
        return f"the training took more than {TRAINING_TIMEOUT_S} s"
    except OSError as exc:
        return str(exc)
    finally:
        partial.unlink(missing_ok=True)
    took = time.monotonic() - started
    print(f"class archive: {target} ({target.stat().st_size >> 20} MiB, {took:.0f} s)")
    return ""


if __name__ == "__main__":
    if sys.argv[1:2] == ["--train"]:
        _train(Path(sys.argv[2]))
    else:
        build()
