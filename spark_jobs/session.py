"""Spark configuration for the lakehouse catalog, and the one function that starts a session.

The same configuration reaches the Dagster Spark resource (whose session also serves dbt, over
Thrift: ``serve_thrift``), ``spark-submit`` of a job in this package, and whatever starts Spark
from ``spark-defaults.conf`` (``write_spark_defaults``: Thrift servers, spark-sql, dbt's
``session`` target). So Spark, dbt and pyiceberg all see one Iceberg catalog.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import logging
import os
import queue
import re
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from spark_jobs.settings import (
    CATALOG,
    NAMESPACES,
    EndpointUnavailable,
    LakehouseSetupError,
    Settings,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

P = ParamSpec("P")
T = TypeVar("T")

ICEBERG_WHEEL = "snowpark_connect_deps_iceberg"
ICEBERG_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
SQLITE_JAR = Path("/usr/share/java/sqlite-jdbc.jar")
SQLITE_JNI_DIR = Path("/usr/lib/x86_64-linux-gnu/jni")
POSTGRES_JAR = Path("/usr/share/java/postgresql.jar")


def iceberg_runtime_jar() -> Path:
    spec = importlib.util.find_spec(ICEBERG_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise LakehouseSetupError(
            f"Iceberg Spark runtime missing: run `uv sync` (package {ICEBERG_WHEEL}==1.0.2)"
        )
    jar = Path(next(iter(spec.submodule_search_locations))) / "jars" / ICEBERG_JAR
    if not jar.is_file():
        raise LakehouseSetupError(f"{jar} not found: reinstall {ICEBERG_WHEEL}==1.0.2")
    return jar


def required_jars(settings: Settings) -> list[Path]:
    """Jars for the catalog and the source database; a missing one names its Debian package."""
    jars = [iceberg_runtime_jar()]
    urls = (settings.catalog_uri, settings.source_url)
    if any(u.startswith("jdbc:sqlite:") for u in urls):
        if not SQLITE_JAR.is_file():
            raise LakehouseSetupError(
                f"SQLite JDBC driver missing ({SQLITE_JAR}): "
                "apt-get install libxerial-sqlite-jdbc-java"
            )
        jars.append(SQLITE_JAR)
    if any(u.startswith("jdbc:postgresql:") for u in urls):
        if not POSTGRES_JAR.is_file():
            raise LakehouseSetupError(
                f"PostgreSQL JDBC driver missing ({POSTGRES_JAR}): "
                "apt-get install libpostgresql-jdbc-java"
            )
        jars.append(POSTGRES_JAR)
    for extra in settings.extra_jars:
        if not Path(extra).is_file():
            raise LakehouseSetupError(f"LAKEHOUSE_EXTRA_JARS names {extra}, which does not exist")
        jars.append(Path(extra))
    return jars


def check_java() -> None:
    if shutil.which("java") is None:
        raise LakehouseSetupError(
            "Java not found on PATH: install a JRE 17 (apt-get install openjdk-17-jre-headless)"
        )


SINGLE_SESSION = "spark.sql.hive.thriftServer.singleSession"
VIEWS_AS_PLANS = "spark.sql.legacy.storeAnalyzedPlanForView"  # the run's shared session only


def spark_conf(settings: Settings) -> dict[str, str]:
    """Everything a Spark session needs to use the ``lakehouse`` Iceberg catalog."""
    scratch = settings.scratch_dir
    # Derby runs only as the in-memory metastore of a Thrift server's Hive client; its log goes
    # to the scratch folder, not the working directory. (Not derby.system.home: under a system
    # home that in-memory metastore fails to create, over and over.)
    derby_log = scratch / "derby.log"
    java_opts = f"-Djava.library.path={SQLITE_JNI_DIR} -Dderby.stream.error.file={derby_log}"
    prefix = f"spark.sql.catalog.{CATALOG}"
    jars = required_jars(settings)
    conf = {
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.driver_memory,
        "spark.jars": ",".join(str(j) for j in jars),
        # On the driver's own classpath too: a Thrift session served from the driver (dbt's)
        # runs its statements in a classloader that does not see jars added by `spark.jars`.
        "spark.driver.extraClassPath": ":".join(str(j) for j in jars),
        "spark.driver.extraJavaOptions": java_opts,
        "spark.executor.extraJavaOptions": java_opts,
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": settings.catalog_uri,
        f"{prefix}.warehouse": settings.warehouse,
        "spark.sql.defaultCatalog": CATALOG,
        # Replacing a day replaces exactly that day, never the whole table.
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # No Hive metastore: the Iceberg catalog is the only catalog, so no metastore_db/.
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(scratch / "spark-warehouse"),
        "spark.local.dir": str(scratch / "tmp"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        # A JSON line that repeats a key is dirt to quarantine, not an error that fails the run.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # Python code that runs inside tasks (the landing reader) must import on every
        # executor, also on a cluster whose workers have never seen this repository.
        "spark.submit.pyFiles": str(scratch / "spark_jobs.zip"),
        # Tasks run Python (the landing reader): the interpreter with this project's packages,
        # not whichever `python3` comes first on PATH.
        "spark.pyspark.python": settings.pyspark_python,
        # Each task's Python worker ends with its task, and hands its memory back. The landing
        # reader is the only Python in tasks, a few tasks per Bronze load; kept for reuse, its
        # workers held 0.6-0.7 GiB through the rest of a 1 M-event day (BENCHMARKS.md).
        "spark.python.worker.reuse": "false",
    }
    if settings.dbt_target == "embedded":
        # dbt's connections to the run's own Thrift endpoint (`serve_thrift`) share the run's
        # session, hence its Iceberg catalog and that catalog's one JDBC connection. A session
        # per connection (Spark's default) opens a catalog, and a connection, per dbt thread:
        # on SQLite one that read before another committed cannot write (SQLITE_BUSY_SNAPSHOT).
        # dbt's `USE` reaches the run's session too: the PySpark assets name tables in full.
        # Static, so set when the session starts. Never for a shared server (`thrift`): its
        # runs' dbt temp views (`<model>__dbt_tmp`) would meet in one session.
        conf[SINGLE_SESSION] = "true"
        # The temporary views dbt makes live on in that shared session (an incremental model's
        # new rows, `<model>__dbt_tmp`: dbt-spark leaves them for the session's end), and the
        # Thrift server, whenever a connection closes, uncaches every temporary view of the
        # session, which resolves each one. A view kept as SQL text (Spark's default) is
        # parsed and analysed again, its Iceberg tables loaded: with the five marts' views,
        # 0.6 s a close (dbt closes its connection after each of its 60 nodes) every day after
        # a lakehouse's first, whose Gold took 21-23 s where its next days took 27-34 s (tiny
        # days, one run each, from dbt.log). Kept as the plan analysed when it was made: 0.05 s
        # a close. Dropping the views instead races those closes: a close that listed a view
        # another connection then dropped fails. (Not in spark-defaults.conf: a spark-sql
        # shell's SQL views then keep reading the tables as they were when made.)
        conf[VIEWS_AS_PLANS] = "true"
    if settings.spark_master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        # One heap is the driver's and the executors': three quarters of it (less Spark's
        # 300 MB) for execution and cached blocks, not Spark's 0.6, so that what a day's
        # ranking checkpoints (about 0.5 GB of rows at 1 M events) most likely stays in memory
        # in the 1.5 GiB heap (SPARK_DRIVER_MEMORY's default). `silver_clickstream` at 1 M
        # events, run twice in one JVM, took 26 s the second time, against 30 s at 0.6 and
        # 24 s in a 2 GiB heap, whose JVM took the run's tree past 3 GB (BENCHMARKS.md). A
        # cluster's executors keep Spark's default.
        conf["spark.memory.fraction"] = "0.75"
    if settings.catalog_uri.startswith("jdbc:sqlite:"):
        # A JVM that touched the catalog holds a shared lock; WAL lets pyiceberg (and other
        # JVMs) write.
        conf[f"{prefix}.jdbc.journal_mode"] = "WAL"
        # A commit that finds another JVM writing waits for it, rather than failing at once.
        conf[f"{prefix}.jdbc.busy_timeout"] = "30000"
        # One connection per JVM. SQLite has one writer anyway, and with Iceberg's default pool
        # of two, a connection that read before another one of the same JVM committed cannot
        # write (SQLITE_BUSY_SNAPSHOT, no wait): dbt's threads lost commits that way whenever
        # another JVM (the run's own) had the catalog open. tests/test_faults.py reproduces it.
        conf[f"{prefix}.clients"] = "1"
    if settings.catalog_user:
        conf[f"{prefix}.jdbc.user"] = settings.catalog_user
        conf[f"{prefix}.jdbc.password"] = settings.catalog_password
    return conf


def write_spark_defaults(settings: Settings) -> Path:
    """Write ``spark-defaults.conf`` for processes that start Spark themselves (dbt, spark-sql).

    It carries the catalog's credentials, so only its owner can read it (folder 0700, file
    0600), and it is replaced atomically: a dbt starting meanwhile never reads half a file.
    """
    conf_dir = settings.spark_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.chmod(0o700)
    # Whatever starts from this file (a Thrift server, spark-sql, dbt's own Spark) may serve
    # several clients: a session each, whatever the run's own session does.
    conf = {k: v for k, v in spark_conf(settings).items() if k != VIEWS_AS_PLANS}
    conf[SINGLE_SESSION] = "false"
    lines = [f"{k} {v}" for k, v in conf.items()]
    target = conf_dir / "spark-defaults.conf"
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    partial.replace(target)
    (conf_dir / "log4j2.properties").write_text(LOG4J2)
    return conf_dir


# Spark's own INFO lines (about 70 per start) drown what a job prints: warnings and errors only.
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


CATALOG_SCHEMES = ("jdbc:sqlite:", "jdbc:postgresql://")


def check_catalog(settings: Settings) -> None:
    """A catalog URI Spark can use, in a place that exists.

    Only the embedded default under ``LAKEHOUSE_HOME`` is created on first use: a mistyped
    path elsewhere would otherwise start a new, empty lakehouse there without a word.
    """
    uri = settings.catalog_uri
    if not uri.startswith(CATALOG_SCHEMES):
        raise LakehouseSetupError(
            f"LAKEHOUSE_CATALOG_URI={uri} is not supported: use jdbc:sqlite:<file> or "
            "jdbc:postgresql://<host>:<port>/<database>"
        )
    if uri.startswith("jdbc:sqlite:"):
        folder = Path(uri.removeprefix("jdbc:sqlite:")).resolve().parent
        if not folder.is_dir() and not folder.is_relative_to(settings.home):
            raise LakehouseSetupError(
                f"the catalog folder {folder} does not exist: create it, or unset "
                "LAKEHOUSE_CATALOG_URI for the embedded catalog under LAKEHOUSE_HOME"
            )


def prepare(settings: Settings) -> None:
    """Fail fast on what a user must fix, and create the local folders Spark writes to."""
    check_java()
    check_catalog(settings)
    required_jars(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.scratch_dir / "tmp").mkdir(parents=True, exist_ok=True)
    package_zip(settings)
    if settings.catalog_uri.startswith("jdbc:sqlite:"):
        Path(settings.catalog_uri.removeprefix("jdbc:sqlite:")).parent.mkdir(
            parents=True, exist_ok=True
        )
    if settings.warehouse.startswith("file://"):
        Path(settings.warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


def build_session(
    settings: Settings, app_name: str = "lakehouse", extra_conf: Mapping[str, str] | None = None
) -> SparkSession:
    """Start (or reuse) the process's Spark session on the lakehouse catalog.

    ``extra_conf`` adds to (or overrides) the project's configuration, e.g. executor memory.
    """
    from pyspark.sql import SparkSession

    prepare(settings)
    check_master(settings.spark_master)
    # PySpark picks the tasks' interpreter from the environment when the context starts.
    os.environ.setdefault("PYSPARK_PYTHON", settings.pyspark_python)
    from spark_jobs.class_archive import java_options

    builder = SparkSession.builder.appName(app_name)  # pyright: ignore[reportAttributeAccessIssue] - a classproperty to pyright
    ours = spark_conf(settings)
    conf = {**ours, **(extra_conf or {})}
    driver_options, jars = conf["spark.driver.extraJavaOptions"], "spark.driver.extraClassPath"
    if "ArchiveClasses" not in driver_options and conf[jars] == ours[jars]:
        # The classes a run loads, mapped from the archive `make setup` built (class_archive):
        # only in this driver, whose class path is the archive's (not one given other jars,
        # nor whatever starts from spark-defaults.conf), and not in the JVM that builds it.
        conf["spark.driver.extraJavaOptions"] = f"{driver_options} {java_options(settings)}"
    for key, value in conf.items():
        builder = builder.config(key, value)
    with signals_deferred():  # an interrupt meanwhile would leave the JVM running for ever
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if settings.spark_master.startswith("spark://"):
        wait_for_executors(spark, settings)
    # A Spark Thrift server opens every session with `USE default`: with the lakehouse as the
    # default catalog, dbt's thrift target needs that namespace to exist there.
    ensure_namespaces(spark, ("default",) if settings.dbt_target == "thrift" else ())
    return spark


def _handled_signals() -> dict[int, Any]:
    """SIGINT's and SIGTERM's handlers where Python handles the signal (not ignored, nor
    set outside Python): the ones a block may stand in for."""
    return {
        signo: current
        for signo in (signal.SIGINT, signal.SIGTERM)
        if (current := signal.getsignal(signo)) not in (signal.SIG_IGN, None)
    }


@contextmanager
def _handling(
    handler: Callable[[int, FrameType | None], None], replaced: dict[int, Any]
) -> Iterator[None]:
    """``handler`` for the signals of ``replaced`` while the block runs; then every handler
    Python set for SIGINT and SIGTERM as it was, also one the block changed (PySpark's
    context sets its own for SIGINT, even where SIGINT was ignored)."""
    with ExitStack() as restore:  # put back whatever a signal raises meanwhile
        for signo in (signal.SIGINT, signal.SIGTERM):
            if (previous := signal.getsignal(signo)) is not None:
                restore.callback(signal.signal, signo, previous)
        for signo in replaced:
            signal.signal(signo, handler)
        yield


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver them to the handlers as
    they were before it (also where the block replaced them). For what must not stop
    halfway: the start of the driver's JVM.

    PySpark starts the JVM, then waits for it to write where its gateway listens, in a
    folder it removes when it stops waiting. Interrupted meanwhile (a run cancelled, or its
    container stopped, in its first seconds), it removed the folder; the JVM, failing to
    write there, kept running with no Python to talk to, for ever (its gateway thread keeps
    it alive). Once the gateway is up, the JVM ends when the Python process does (it watches
    its stdin).

    PySpark's context installs a SIGINT handler of its own once the gateway is up: from then
    to the block's end, a SIGINT is that handler's (``KeyboardInterrupt``), not held; after
    the block, the handler from before is back (Dagster's run worker holds a cancel until its
    step can take it, where PySpark's raises anywhere). Both held, SIGTERM is delivered
    first: the stronger request. A ``kill -9`` cannot be held: see the README. Outside the
    main thread (where no signal handler can be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: set[int] = set()

    def hold(signo: int, frame: FrameType | None) -> None:
        received.add(signo)

    try:
        with _handling(hold, _handled_signals()):
            yield
    finally:  # also when the block failed: a cancel is what the caller asked for
        for signo in (signal.SIGTERM, signal.SIGINT):
            if signo in received:
                signal.raise_signal(signo)  # handled now, by the handler restored


_served: dict[str, int] = {}  # the Thrift port of each Spark application this process serves


class SparkCallInterrupted(Exception):
    """An interrupt that arrived while this thread waited for the JVM's answer to a call
    (``cancels_on_interrupt``). An ``Exception``, unlike the interrupt itself: py4j answers
    it by closing the call's connection (the caller sees a plain ``Py4JError``; py4j's ERROR
    about it is dropped, ``_QuietInterruptedCall``), so the thread's next call opens a fresh
    one."""


class _QuietInterruptedCall(logging.Filter):
    """Drop py4j's report of a call ``cancels_on_interrupt`` interrupted on purpose: py4j
    logs it at ERROR with a traceback ("Exception while sending command", on the root
    logger), which read as a failure in a cancelled step's log. Other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        for _ in range(8):  # py4j's network error holds the interruption as its cause
            if error is None:
                return True
            if isinstance(error, SparkCallInterrupted):
                return False
            error = getattr(error, "cause", None) or error.__cause__ or error.__context__
        return True


def _in_py4j(frame: FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("py4j."):
            return True
        frame = frame.f_back
    return False


def _waiting_for_answer(frame: FrameType | None) -> bool:
    """The frame is py4j's read of the JVM's answer (a socket read in ``send_command``).
    Raising there closes the connection, and py4j never sends a call again once it waits
    for its answer; raised while the call is being sent, it would send it again."""
    caller = frame.f_back if frame is not None else None
    return (
        frame is not None
        and caller is not None
        and frame.f_code.co_name == "readinto"
        and caller.f_code.co_name == "send_command"
        and str(caller.f_globals.get("__name__", "")).startswith("py4j.")
    )


def _cancel_on_signal(spark: SparkSession, tag: str, signals: queue.SimpleQueue) -> None:
    """Once a signal is queued, cancel the block's jobs (those tagged ``tag``) until the
    block ends (``None``): also the jobs the interrupted code still starts on its way out."""
    if signals.get() is None:
        return
    while True:
        with suppress(Exception):  # the JVM already gone: nothing left to cancel
            spark.sparkContext.cancelJobsWithTag(tag)
        try:
            if signals.get(timeout=0.2) is None:
                return
        except queue.Empty:
            continue


@contextmanager
def cancels_on_interrupt(spark: SparkSession) -> Iterator[None]:
    """An interrupt (SIGINT: a run cancelled from the UI or the API, which Dagster's run
    worker sends itself; SIGTERM) that arrives while the block waits on Spark cancels the
    block's Spark jobs at once, and is raised as before once the block has unwound.

    Raised where it arrives, the interrupt (a ``BaseException``) went through py4j's call in
    progress without closing its connection: the thread's next call (an ``unpersist`` in a
    ``finally``) waited for the action to end, then read that action's answer as its own,
    and every later call another's. A cancelled 1 M-event day stayed in
    ``silver_clickstream`` for 9.4 s, until its Spark stage was done; a larger day's stage
    lasts minutes. Now:

    - outside a py4j call, the handler this replaced raises the interrupt at once, as before;
    - inside one, the block's jobs (tagged for it) are cancelled from another thread, again
      and again until the block ends, and, if the call is waiting for its answer, it fails
      there with ``SparkCallInterrupted`` (py4j closes the connection; code that cleans up on
      the way out gets a fresh one, whose jobs are not the block's). The interrupt is raised
      once the block has unwound, by the handler this replaced: Dagster's (the step
      "interrupted"), or whichever other handler was set (``KeyboardInterrupt`` for
      Python's default and PySpark's).

    Only the run's Python stops at once: the JVM finishes what runs outside a job (a commit
    being written) until the process ends. Outside the main thread (where no signal handler
    can be set) it does nothing, as for a signal that was ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = _handled_signals()
    tag = f"lakehouse-interruptible-{uuid.uuid4().hex}"
    signals: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe in a signal handler
    received: list[int] = []
    forwarded: list[int] = []

    def forward(signo: int, frame: FrameType | None) -> None:
        forwarded.append(signo)
        previous = replaced[signo]
        if previous == signal.SIG_DFL:
            raise KeyboardInterrupt if signo == signal.SIGINT else SystemExit(128 + signo)
        try:
            previous(signo, frame)  # Dagster's raises its interruption; PySpark's, its own
        except Exception as exc:  # PySpark's cancels jobs first, and the JVM may be gone
            raise KeyboardInterrupt from exc

    def handler(signo: int, frame: FrameType | None) -> None:
        if forwarded or not _in_py4j(frame):
            forward(signo, frame)
            return
        if not received:
            received.append(signo)
            signals.put(signo)
        if _waiting_for_answer(frame):
            raise SparkCallInterrupted(f"signal {signo} while waiting for Spark")

    spark.sparkContext.addJobTag(tag)
    threading.Thread(
        target=_cancel_on_signal, args=(spark, tag, signals), name="cancel-on-interrupt",
        daemon=True,
    ).start()  # fmt: skip
    with ExitStack() as restore:  # every handler put back, whatever a signal raises meanwhile
        restore.enter_context(_handling(handler, replaced))
        restore.callback(signals.put, None)
        restore.callback(_remove_job_tag, spark, tag)
        quiet, root = _QuietInterruptedCall(), logging.getLogger()
        root.addFilter(quiet)
        restore.callback(root.removeFilter, quiet)
        try:
            yield
        except BaseException:
            if received and not forwarded:
                forward(received[0], None)  # in place of the cancelled call's error
            raise
    if received and not forwarded:  # the block ended on its own after all (or as it closed)
        forward(received[0], None)


def interruptible(
    work: Callable[Concatenate[SparkSession, P], T],
) -> Callable[Concatenate[SparkSession, P], T]:
    """Decorate a function whose first argument is the session to run in
    ``cancels_on_interrupt`` (``releases_checkpoints`` does, too)."""

    @functools.wraps(work)
    def wrapped(spark: SparkSession, *args: P.args, **kwargs: P.kwargs) -> T:
        with cancels_on_interrupt(spark):
            return work(spark, *args, **kwargs)

    return wrapped


def _remove_job_tag(spark: SparkSession, tag: str) -> None:
    with suppress(Exception):  # the JVM gone: no tag left to remove
        spark.sparkContext.removeJobTag(tag)


# Spark's two settings for the Java it generates and compiles (janino, then the JVM's JIT) for
# each query's expressions and operators. Internal to Spark (its tests run with both values),
# read per query from the session's conf.
CODEGEN_FACTORY_MODE = "spark.sql.codegen.factoryMode"
CODEGEN_WHOLE_STAGE = "spark.sql.codegen.wholeStage"


@contextmanager
def compiled_from(spark: SparkSession, rows: int, min_rows: int) -> Iterator[bool]:
    """Run the block's queries on Spark's generated code when they read at least ``min_rows``
    rows (``rows``: what the block reads, as its caller counts it); below, on its interpreted
    expressions. Yields whether the block compiles. ``min_rows`` of 0 compiles always
    (Spark's default).

    The idea of PostgreSQL's ``jit_above_cost``: compiling pays for itself on large inputs
    only. Every query Spark plans generates Java for its expressions (janino compiles it, then
    the JVM's JIT compiles janino and that code), and a run's new JVM does all of it cold: on
    a tiny day about half the JVM's CPU was the JIT. Measured on next days (BENCHMARKS.md):
    a tiny day's Silver 17.1-17.9 s interpreted against 19.6-22.5 s compiled; on a 1 M-event
    day, interpreted, `silver_products` (480 rows) took 2.9 s against 3.1-4.1, but
    `silver_customers` (19.5 k rows) 6.2-6.6 against 5.7-5.9, `silver_inventory` (51 k)
    10.4 against 9.0 and `silver_clickstream` (1 M) 68.2 against 46.7-50.9: hence the
    default of 10,000 rows (``Settings.codegen_min_rows``). Silver's rows are the same either
    way (tests/test_materialize.py); Gold's figures, to the cent, are tested on both paths.
    """
    if min_rows <= 0 or rows >= min_rows:
        yield True
        return
    conf = spark.conf
    before = {key: conf.get(key, None) for key in (CODEGEN_FACTORY_MODE, CODEGEN_WHOLE_STAGE)}
    try:
        conf.set(CODEGEN_FACTORY_MODE, "NO_CODEGEN")
        conf.set(CODEGEN_WHOLE_STAGE, "false")
        yield False
    finally:
        for key, value in before.items():
            if value is None:
                conf.unset(key)
            else:
                conf.set(key, value)


def releases_checkpoints(
    load: Callable[Concatenate[SparkSession, P], T],
) -> Callable[Concatenate[SparkSession, P], T]:
    """Decorate a table's load (its first argument the session) to release, when it ends,
    the local checkpoints it made: it returns figures, never a DataFrame.

    A load needs its checkpointed rows until it has written and counted them, no longer.
    Left to Spark's cleaner (which acts only once the JVM has collected their plans, after
    Python let go of them), a 1 M-event day's Silver checkpoints were still held when Gold
    started, and the heap they filled stayed committed through dbt's build: the run's peak.
    Cached DataFrames are uncached by the code that caches them (Spark's cache manager keeps
    its own record of them); loads run one at a time in a run's session.
    """

    @functools.wraps(load)
    def released(spark: SparkSession, *args: P.args, **kwargs: P.kwargs) -> T:
        from py4j.protocol import Py4JError

        jsc: Any = spark.sparkContext._jsc  # py4j's gateway: untyped
        persisted = jsc.getPersistentRDDs  # no public API lists them, or tells a checkpoint
        with cancels_on_interrupt(spark):  # a cancelled run: its release, then its interrupt
            before = set(persisted().keys())
            try:
                return load(spark, *args, **kwargs)
            finally:
                # A release that fails (the JVM gone) leaves memory held, never an error in
                # place of the load's own outcome.
                with suppress(Py4JError):
                    for rdd_id, rdd in persisted().items():
                        if rdd_id not in before and rdd.rdd().isLocallyCheckpointed():
                            rdd.unpersist(False)

    return released


def return_free_heap(spark: SparkSession) -> None:
    """A full collection of the driver JVM's heap, after which G1 hands back to the system
    the heap it does not need (beyond ``MaxHeapFreeRatio``, 70 %, free); otherwise it keeps
    what it committed. The PySpark layers of a 1 M-event day leave the whole 1.5 GiB
    committed, about 80 MB of it live once their checkpoints are released, where dbt's build
    needs less and starts a process of its own beside it: that was the run's peak
    (BENCHMARKS.md, "The next large day's memory"; 0.1-0.5 s a collection there).
    """
    jvm: Any = spark.sparkContext._jvm  # py4j's gateway: untyped
    jvm.java.lang.System.gc()


def serve_thrift(spark: SparkSession, settings: Settings) -> int:
    """Serve ``spark`` over the HiveServer2 protocol on a loopback port, for dbt-spark's thrift
    method, and return the port: dbt's models then run in this JVM, on this session's catalog,
    instead of a Spark of their own (about 15 s of start-up and a second writer on the catalog
    per dbt invocation). It starts in under a second, once per Spark application: it lives as
    long as the JVM (Spark cannot start a second one in a JVM whose first was stopped).

    The port is the home's own (``Settings.run_thrift_port``) when it is free, so dbt sees the
    same profile run after run and reuses its parsed project (a changed port is a changed
    profile to dbt: a full re-parse, 3 s). When another process holds it (a test session's JVM
    still serving an earlier run), the kernel picks one: slower for dbt, never wrong. The check
    and the bind happen under a lock on the home, so two runs starting together cannot both
    find the port free. Only loopback can connect. With
    ``spark.sql.hive.thriftServer.singleSession`` (static, so set by ``spark_conf``) every
    connection shares ``spark`` itself, and its catalog.
    """
    from py4j.protocol import Py4JJavaError

    application = spark.sparkContext.applicationId
    if application in _served:
        return _served[application]
    ensure_namespaces(spark, ("default",))  # every Thrift session opens with `USE default`
    hive = settings.scratch_dir / "hive"
    hive.mkdir(parents=True, exist_ok=True)
    for left in hive.glob("*_resources"):  # earlier runs' sessions' folders, all empty
        with suppress(OSError):  # not empty (then not ours to remove), or gone meanwhile
            left.rmdir()
    with hold_lock(settings.scratch_dir / "thrift.lock"):
        for key, value in {
            "hive.server2.thrift.bind.host": "127.0.0.1",
            "hive.server2.thrift.port": str(thrift_port_to_bind(settings)),
            # Per-statement log files would go to /tmp/<user>/operation_logs; Spark's log has them.
            "hive.server2.logging.operation.enabled": "false",
            # A client's status poll waits here until its statement ends (or 5 s pass), so
            # dbt's embedded output polls without sleeping in between (profiles.yml).
            "hive.server2.long.polling.timeout": "5s",
            "hive.exec.local.scratchdir": str(hive),
            # Where a Thrift session puts resources it adds (none here): a folder of its own,
            # by default /tmp/<session id>_resources, left behind (one more in /tmp a run).
            # In the scratch folder instead, where the next run removes it (above). One
            # folder for all sessions would not do: Hive fails a session whose folder another
            # session's thread is creating at the same moment.
            "hive.downloaded.resources.dir": str(hive / "${hive.session.id}_resources"),
        }.items():
            spark.conf.set(key, value)  # the server reads its HiveConf from the session's conf
        jvm: Any = spark.sparkContext._jvm  # py4j's gateway: untyped
        session: Any = spark._jsparkSession  # pyright: ignore[reportAttributeAccessIssue]
        _quiet_closed_connections(jvm)
        try:
            server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
                session.sqlContext()
            )
        except Py4JJavaError as exc:
            cause = str(exc.java_exception).splitlines()[0]
            port = spark.conf.get("hive.server2.thrift.port")
            raise EndpointUnavailable(
                f"the run's Spark Thrift server (dbt's embedded target) did not start on "
                f"127.0.0.1:{port}: {cause}; if another program took that port, re-execute"
                " the run (it then lets the kernel pick one)"
            ) from None
    ports = [
        service.getPortNumber()
        for service in server.getServices()
        if service.getClass().getSimpleName() == "ThriftBinaryCLIService"
    ]
    if not ports or not ports[0]:
        raise EndpointUnavailable(
            "the run's Spark Thrift server started without a listening port; "
            "set LAKEHOUSE_DBT_TARGET=session to give dbt a Spark of its own"
        )
    _served[application] = ports[0]
    # The server's first session boots Hive's in-memory metastore when it closes (Hive's
    # SessionState.close asks for a metastore client): 3 s, once per JVM. Pay it now, beside
    # dbt's own start-up, rather than inside dbt's first query.
    threading.Thread(target=_open_and_close_a_session, args=(ports[0],), daemon=True).start()
    return ports[0]


# What the Thrift library (0.12) logs as an ERROR, with a stack trace, for any TException
# while it serves a connection, a client closing it included (a TTransportException; later
# versions ignore that one). dbt closes one per node, some 60 ERRORs in a successful run's
# log. Dropped in the run's own server only: its one client is dbt on loopback, which
# reports a failed connection or statement itself. A server other clients use (the
# cluster's) keeps the message: there it may be a client's protocol or SASL mismatch.
CLOSED_CONNECTION = "Thrift error occurred during processing of message."
_quieted: list[bool] = []  # once a process: the filter outlives a SparkContext in its JVM


def _quiet_closed_connections(jvm: Any) -> None:
    """Drop ``CLOSED_CONNECTION`` from the run's JVM log. (log4j gives the logger a
    configuration of its own, at the root's level then: a later ``setLogLevel`` no longer
    reaches it. Nothing here changes the level after the session starts.)"""
    if _quieted:
        return
    core = jvm.org.apache.logging.log4j.core
    result = getattr(core, "Filter$Result")  # py4j names a nested class with its `$`
    closed = core.filter.RegexFilter.createFilter(
        re.escape(CLOSED_CONNECTION), None, False, result.DENY, result.NEUTRAL
    )
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    context.getLogger("org.apache.thrift.server.TThreadPoolServer").addFilter(closed)
    _quieted.append(True)


def thrift_port_to_bind(settings: Settings) -> int:
    """The home's port if a server could listen on it now, else 0 (the kernel picks): a failed
    bind cannot be retried in the same JVM, so it is checked first. The probe binds as Thrift's
    server socket does, with SO_REUSEADDR: connections in TIME_WAIT do not hold the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", settings.run_thrift_port))
        except OSError:
            return 0
    return settings.run_thrift_port


def hold_lock(path: Path, on_wait: Callable[[], None] | None = None) -> IO:
    """An exclusive lock on ``path``, held until the returned file is closed (``with`` it).
    The kernel drops it when the process ends, also after `kill -9`: it is never left stuck.
    ``on_wait`` is called once if another process holds it, before waiting for it."""
    lock = path.open("a")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
    except BaseException:
        lock.close()
        raise
    return lock


def _open_and_close_a_session(port: int) -> None:
    # A warm-up only: if it fails, dbt's own first connection reports why.
    with suppress(Exception):
        from pyhive import hive

        hive.connect(host="127.0.0.1", port=port, username="lakehouse-warmup").close()


def answers(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_master(master: str) -> None:
    """A standalone master that does not answer fails here, in one line, naming it.

    Spark itself would retry registering for a minute and then leave a stopped context behind.
    """
    if not master.startswith("spark://"):
        return
    addresses = master.removeprefix("spark://").split(",")  # several with ZooKeeper HA
    for address in addresses:
        host, _, port = address.rpartition(":")
        if port.isdigit() and answers(host, int(port)):
            return
    raise EndpointUnavailable(
        f"the Spark master {master} does not answer: start it (one box: `make cluster-up`) "
        "or point SPARK_MASTER at a running one"
    )


def executor_count(spark: SparkSession) -> int:
    """Executors registered with the application (its status tracker lists the driver too)."""
    tracker = spark.sparkContext._jsc.sc().statusTracker()  # pyright: ignore[reportOptionalMemberAccess, reportOptionalCall] - py4j is untyped
    return len(tracker.getExecutorInfos()) - 1


def wait_for_executors(spark: SparkSession, settings: Settings) -> None:
    """On a cluster, until ``min_executors`` executors registered; past the wait, stop the
    application and fail naming the master. Without this a run whose workers are down or
    busy waits for cores forever ("Initial job has not accepted any resources")."""
    deadline = time.monotonic() + settings.executor_wait_s
    while (found := executor_count(spark)) < settings.min_executors:
        if time.monotonic() > deadline:
            spark.stop()
            raise EndpointUnavailable(
                f"{found} of {settings.min_executors} Spark executors registered with "
                f"{settings.spark_master} within {settings.executor_wait_s}s: a worker is "
                "down or has no free cores; its master's UI lists them (one box: "
                "`make cluster-status`, `make cluster-up`)"
            )
        time.sleep(1)


def package_zip(settings: Settings) -> Path:
    """Zip ``spark_jobs`` for the executors (rebuilt per session, a few kB)."""
    import zipfile

    package = Path(__file__).resolve().parent
    target = settings.scratch_dir / "spark_jobs.zip"
    if not package.is_dir():
        # Imported from a zip (spark-submit with spark.submit.pyFiles puts it ahead of the
        # repo): that zip is the package. Rebuilt from there it would come out empty.
        archive = Path(str(package).rpartition(".zip")[0] + ".zip")
        if archive != target:
            shutil.copyfile(archive, target)
        return target
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with zipfile.ZipFile(partial, "w") as archive:
        for source in sorted(package.rglob("*.py")):  # the silver/ package too
            archive.write(source, f"spark_jobs/{source.relative_to(package).as_posix()}")
    partial.replace(target)  # atomic: a running session never reads a half-written zip
    return target


def ensure_namespaces(spark: SparkSession, extra: tuple[str, ...] = ()) -> None:
    for namespace in (*NAMESPACES, *extra):
        # Identifiers cannot be bound parameters; these come from constants, never from input.
        statement = f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{namespace}"
        spark.sql(statement)
