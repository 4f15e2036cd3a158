"""The production stack on one machine, every server a real process on loopback.

    python -m tools.cluster up | status | down | clean | env

``up`` starts PostgreSQL (the Iceberg catalog, the operational ``shop`` database and Dagster's
storage), a Spark standalone master and its workers, the Spark Thrift server on that master
(dbt's Gold models run there), an S3 API server holding the landing bucket (moto's), a
Prometheus Pushgateway the runs push their metrics to and a Prometheus scraping it with the
alert rules of ``deployment/prometheus/``, and the Dagster webserver and daemon on
``deployment/cluster/dagster.yaml``. The configuration is
``deployment/cluster.env`` (the environment wins over it); the state, logs and pid files live
under ``$LAKEHOUSE_HOME/cluster/``; the database password is generated once into
``secrets.env`` there (mode 0600). ``down`` stops exactly what ``up`` started, by pid, and any
process left with the stack's marker in its environment (run workers, Spark executors); data
stays. ``clean`` removes the state.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.settings import REPO_ROOT, Settings
from tools import prometheus

ENV_FILE = REPO_ROOT / "deployment" / "cluster.env"
DAGSTER_YAML = REPO_ROOT / "deployment" / "cluster" / "dagster.yaml"
SPARK_HOME = Path(__import__("pyspark").__file__).parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
MARKER = "LAKEHOUSE_CLUSTER"  # in the environment of every process of the stack
THRIFT_APP = "lakehouse-thrift"
DATABASES = ("iceberg", "shop", "dagster")


class ClusterError(RuntimeError):
    """A component that did not come up or go down; the message names it."""


def read_env_file(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """``KEY=VALUE`` lines with ``${NAME}`` references; a key set in ``environ`` wins."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ClusterError(f"{path}:{number}: not a KEY=VALUE line: {line!r}")
        if key in environ:
            out[key] = environ[key]
            continue

        known = {**environ, **out}
        missing = [n for n in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", value) if n not in known]
        if missing:
            raise ClusterError(f"{path}:{number}: ${{{missing[0]}}} is not defined above")
        out[key] = re.sub(
            r"\$\{([A-Z_][A-Z0-9_]*)\}", lambda m, known=known: known[m.group(1)], value
        )
    return out


@dataclass(frozen=True)
class Stack:
    """Where the stack keeps its state, and the environment its processes share."""

    state: Path
    env: dict[str, str]
    source: dict[str, str]  # the environment it was built from

    def reload(self) -> Stack:
        return Stack.from_env(self.source)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Stack:
        environ = dict(os.environ if environ is None else environ)
        state = Settings.from_env(environ).home / "cluster"
        config = read_env_file(ENV_FILE, environ)
        secret_file = state / "secrets.env"
        found = read_env_file(secret_file, {}) if secret_file.is_file() else {}
        env = {
            **environ,
            **config,
            **found,
            # The stack's own lakehouse home (Spark scratch, spark-defaults.conf, locks).
            "LAKEHOUSE_HOME": str(state / "home"),
            "DAGSTER_HOME": str(state / "dagster-home"),
            "PYTHONPATH": str(REPO_ROOT),
            "SPARK_HOME": str(SPARK_HOME),
            "PYSPARK_PYTHON": sys.executable,
            MARKER: str(state),
        }
        return cls(state, env, environ)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    def port(self, name: str) -> int:
        return int(self.env[f"CLUSTER_{name}_PORT"])

    def host(self, name: str) -> str:
        return self.env[f"CLUSTER_{name}_HOST"]

    @property
    def workers(self) -> int:
        return int(self.env["CLUSTER_SPARK_WORKERS"])

    @property
    def settings(self) -> Settings:
        """The lakehouse's settings as the stack's processes see them."""
        return Settings.from_env(self.env)

    @property
    def timeout(self) -> float:
        return float(self.env.get("CLUSTER_START_TIMEOUT_S", "120"))

    @property
    def dagster_url(self) -> str:
        return f"http://{self.env['CLUSTER_HOST']}:{self.port('DAGSTER')}"

    @property
    def spark_ui(self) -> str:
        return f"http://{self.host('SPARK')}:{self.port('SPARK_UI')}"


# ------------------------------------------------------------------ processes
def _default_signals() -> None:
    # A stack started from a background shell inherits ignored SIGINT/SIGTERM: undo that, so
    # `down` can stop what `up` started.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def spawn(stack: Stack, name: str, cmd: list[str], cwd: Path | None = None) -> int:
    stack.logs.mkdir(parents=True, exist_ok=True)
    stack.pids.mkdir(parents=True, exist_ok=True)
    with open(stack.logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            cmd,
            env=stack.env,
            cwd=cwd or stack.state,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops it and its children
            preexec_fn=_default_signals,
        )
    (stack.pids / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _pid(stack: Stack, name: str) -> int | None:
    path = stack.pids / f"{name}.pid"
    return int(path.read_text()) if path.is_file() else None


def tail(stack: Stack, name: str, lines: int = 20) -> str:
    path = stack.logs / f"{name}.log"
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(stack: Stack, name: str, healthy: Callable[[], bool]) -> None:
    """Until ``healthy()``; past the timeout, or if the process died, fail naming ``name``."""
    deadline = time.monotonic() + stack.timeout
    while not _safe(healthy):
        pid = _pid(stack, name)
        if pid is not None and not _alive(pid):
            raise ClusterError(f"{name} exited; last lines of its log:\n{tail(stack, name)}")
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{name} did not come up within {stack.timeout:.0f}s; last lines of "
                f"{stack.logs / (name + '.log')}:\n{tail(stack, name)}"
            )
        time.sleep(1)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except (OSError, ValueError, KeyError):
        return False


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------ PostgreSQL
def _pg(tool: str) -> str:
    if PG_BIN is None:
        raise ClusterError("postgres: server binaries missing: apt-get install postgresql")
    return str(PG_BIN / tool)


def _as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: its tools run as the postgres user when we are."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _pg_dirs(stack: Stack) -> tuple[Path, Path]:
    return stack.state / "postgres", stack.state / "postgres" / "data"


def start_postgres(stack: Stack) -> None:
    root, data = _pg_dirs(stack)
    if not data.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        pwfile = root / "pwfile"
        pwfile.write_text(stack.env["DAGSTER_PG_PASSWORD"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        done = _as_postgres(
            [_pg("initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
             "--auth-local=trust", "--auth-host=scram-sha-256"]
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode:
            raise ClusterError(f"postgres: initdb failed: {done.stderr.strip()[-500:]}")
    stack.logs.mkdir(parents=True, exist_ok=True)
    stack.pids.mkdir(parents=True, exist_ok=True)
    log = stack.logs / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, "postgres", "postgres")
    options = f"-p {stack.port('PG')} -k {root} -c listen_addresses={stack.host('PG')}"
    done = _as_postgres([_pg("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "start"])
    if done.returncode:
        raise ClusterError(
            f"postgres: pg_ctl start failed: {done.stderr.strip()}\n{tail(stack, 'postgres')}"
        )
    wait_for(stack, "postgres", lambda: _pg_ready(stack))
    pid = (data / "postmaster.pid").read_text().split()[0]
    (stack.pids / "postgres.pid").write_text(pid)
    _create_databases(stack)


def _pg_ready(stack: Stack) -> bool:
    root, _ = _pg_dirs(stack)
    done = _as_postgres([_pg("pg_isready"), "-h", str(root), "-p", str(stack.port("PG"))])
    return done.returncode == 0


def psql(stack: Stack, sql: str, db: str = "postgres") -> str:
    """SQL through the server's local socket (trust for its owner), from stdin: a password in
    the statement never shows in a process list."""
    root, _ = _pg_dirs(stack)
    done = _as_postgres(
        [_pg("psql"), "-h", str(root), "-p", str(stack.port("PG")), "-U", "postgres",
         "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-f", "-"],
        input=sql,
    )  # fmt: skip
    if done.returncode:
        raise ClusterError(f"postgres: {done.stderr.strip()}")
    return done.stdout


def _create_databases(stack: Stack) -> None:
    user, password = stack.env["DAGSTER_PG_USER"], stack.env["DAGSTER_PG_PASSWORD"]
    if not psql(stack, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'").strip():
        psql(stack, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    existing = set(psql(stack, "SELECT datname FROM pg_database").split())
    for db in DATABASES:
        if db not in existing:
            psql(stack, f"CREATE DATABASE {db} OWNER {user}")


def stop_postgres(stack: Stack) -> None:
    _, data = _pg_dirs(stack)
    if PG_BIN is not None and (data / "postmaster.pid").is_file():
        _as_postgres([_pg("pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"])
    (stack.pids / "postgres.pid").unlink(missing_ok=True)


# ------------------------------------------------------------------ Spark
def _spark_class(*args: str) -> list[str]:
    return [str(SPARK_HOME / "bin" / "spark-class"), *args]


def start_spark_master(stack: Stack) -> None:
    host, port, ui = stack.host("SPARK"), stack.port("SPARK"), stack.port("SPARK_UI")
    spawn(
        stack,
        "spark-master",
        _spark_class("org.apache.spark.deploy.master.Master", "--host", host, "--port", str(port),
                     "--webui-port", str(ui)),
    )  # fmt: skip
    wait_for(stack, "spark-master", lambda: "workers" in get_json(f"{stack.spark_ui}/json"))


def _worker_ui_port(stack: Stack, n: int) -> int:
    """``CLUSTER_SPARK_WORKER_<n>_UI_PORT`` when set (the tests give each its own free port),
    else the master's port + 10 + n."""
    chosen = stack.env.get(f"CLUSTER_SPARK_WORKER_{n}_UI_PORT")
    return int(chosen) if chosen else stack.port("SPARK") + 10 + n


def start_spark_worker(stack: Stack, n: int) -> None:
    host, port = stack.host("SPARK"), stack.port("SPARK")
    work = stack.state / "spark" / f"worker-{n}"
    work.mkdir(parents=True, exist_ok=True)
    spawn(
        stack,
        f"spark-worker-{n}",
        _spark_class("org.apache.spark.deploy.worker.Worker", f"spark://{host}:{port}",
                     "--host", host, "--cores", stack.env["CLUSTER_WORKER_CORES"],
                     "--memory", stack.env["CLUSTER_WORKER_MEMORY"],
                     "--webui-port", str(_worker_ui_port(stack, n)), "--work-dir", str(work)),
    )  # fmt: skip
    wait_for(stack, f"spark-worker-{n}", lambda: _worker_alive(stack, n))


def start_thrift(stack: Stack) -> None:
    """The Spark Thrift server as an application on the master, with the lakehouse catalog."""
    from spark_jobs.session import prepare, required_jars, write_spark_defaults

    settings = stack.settings
    prepare(settings)
    conf_dir = write_spark_defaults(settings)  # 0600: it carries the catalog password
    cwd = stack.state / "thrift"
    cwd.mkdir(parents=True, exist_ok=True)
    spawn(
        _with(stack, SPARK_CONF_DIR=str(conf_dir)),
        "thrift",
        [str(SPARK_HOME / "bin" / "spark-submit"),
         "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
         "--name", THRIFT_APP, "--master", settings.spark_master,
         # On the driver's own classpath: the server runs each session's statements in a
         # classloader that does not see jars added later (`spark.jars`).
         "--driver-class-path", ":".join(str(j) for j in required_jars(settings)),
         # Marks the process for `make cluster-status` (and replaces the project's driver
         # options, which only matter to a run's own JVM).
         "--driver-java-options", "-Dlakehouse.component=thrift",
         # One 1-core executor per worker: the runs' own applications need the other cores.
         "--conf", "spark.cores.max=" + str(stack.workers), "--conf", "spark.executor.cores=1",
         "--conf", "spark.executor.memory=768m",
         # A session per connection: the runs it serves at once must not share temp views.
         "--conf", "spark.sql.hive.thriftServer.singleSession=false",
         "--hiveconf", f"hive.server2.thrift.port={stack.port('THRIFT')}",
         "--hiveconf", f"hive.server2.thrift.bind.host={stack.host('THRIFT')}",
         "spark-internal"],
        cwd=cwd,
    )  # fmt: skip
    wait_for(stack, "thrift", lambda: port_open(stack.host("THRIFT"), stack.port("THRIFT")))


def _with(stack: Stack, **env: str) -> Stack:
    return Stack(stack.state, {**stack.env, **env}, stack.source)


# ------------------------------------------------------------------ S3
def start_s3(stack: Stack) -> None:
    host, port = stack.host("S3"), stack.port("S3")
    spawn(stack, "s3", [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)])
    wait_for(stack, "s3", lambda: port_open(host, port))
    s3 = s3_client(stack)
    bucket = stack.env["CLUSTER_LANDING_BUCKET"]
    if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=bucket)


def s3_client(stack: Stack):
    """boto3 on the stack's S3 API, with its keys."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.env["LAKEHOUSE_S3_ENDPOINT_URL"],
        region_name=stack.env["AWS_REGION"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
    )


# ------------------------------------------------------------------ metrics
def _url(stack: Stack, name: str) -> str:
    return f"http://{stack.host(name)}:{stack.port(name)}"


def _metrics_binary(command: Callable[[], list[str]]) -> list[str]:
    try:
        return command()
    except RuntimeError as exc:  # not installed: one line saying what to run
        raise ClusterError(str(exc)) from None


def start_pushgateway(stack: Stack) -> None:
    host, port = stack.host("PUSHGATEWAY"), stack.port("PUSHGATEWAY")
    persist = stack.state / "pushgateway.metrics"
    spawn(stack, "pushgateway", _metrics_binary(
        lambda: prometheus.pushgateway_command(host, port, persist)))  # fmt: skip
    wait_for(stack, "pushgateway", lambda: prometheus.ready(_url(stack, "PUSHGATEWAY")))


def start_prometheus(stack: Stack) -> None:
    target = f"{stack.host('PUSHGATEWAY')}:{stack.port('PUSHGATEWAY')}"
    home = stack.state / "prometheus"
    config = prometheus.write_config(home, target)
    host, port = stack.host("PROMETHEUS"), stack.port("PROMETHEUS")
    spawn(stack, "prometheus", _metrics_binary(
        lambda: prometheus.prometheus_command(config, home / "data", host, port)))  # fmt: skip
    wait_for(stack, "prometheus", lambda: prometheus.ready(_url(stack, "PROMETHEUS")))


# ------------------------------------------------------------------ Dagster
def _dagster_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_webserver(stack: Stack) -> None:
    home = Path(stack.env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    migrated = subprocess.run(
        [_dagster_bin("dagster"), "instance", "migrate"],
        env=stack.env, capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    if migrated.returncode:
        raise ClusterError(f"dagster: instance migrate failed: {migrated.stderr.strip()[-800:]}")
    spawn(
        stack,
        "dagster-webserver",
        [_dagster_bin("dagster-webserver"), "-h", stack.env["CLUSTER_HOST"],
         "-p", str(stack.port("DAGSTER")), "-w", WORKSPACE],
        cwd=REPO_ROOT,
    )  # fmt: skip
    wait_for(stack, "dagster-webserver", lambda: bool(get_json(f"{stack.dagster_url}/server_info")))


def start_daemon(stack: Stack) -> None:
    spawn(stack, "dagster-daemon", [_dagster_bin("dagster-daemon"), "run", "-w", WORKSPACE],
          cwd=REPO_ROOT)  # fmt: skip
    wait_for(stack, "dagster-daemon", lambda: daemons_healthy(stack))


WORKSPACE = str(REPO_ROOT / "workspace.yaml")


def graphql(stack: Stack, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{stack.dagster_url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise ClusterError(f"dagster-webserver: {body['errors'][0].get('message')}")
    return body["data"]


def daemons_healthy(stack: Stack) -> bool:
    data = graphql(
        stack,
        "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }",
    )
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    wanted = {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"}
    return wanted <= {s["daemonType"] for s in statuses if s["healthy"]}


# ------------------------------------------------------------------ the whole stack
def ensure_secrets(stack: Stack) -> Stack:
    """One generated password for the stack's database role, kept in a 0600 file."""
    path = stack.state / "secrets.env"
    if not path.is_file():
        stack.state.mkdir(parents=True, exist_ok=True)
        password = secrets.token_hex(16)
        lines = [
            f"DAGSTER_PG_PASSWORD={password}",
            f"LAKEHOUSE_CATALOG_PASSWORD={password}",
            f"LAKEHOUSE_SOURCE_PASSWORD={password}",
            # moto takes any key; MinIO or AWS would be given theirs here.
            f"AWS_ACCESS_KEY_ID=lakehouse-{secrets.token_hex(4)}",
            f"AWS_SECRET_ACCESS_KEY={secrets.token_hex(16)}",
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
    return stack.reload()


def up(stack: Stack) -> Stack:
    """Start every component that does not answer, in dependency order; leave the rest.

    After a crash (a worker, the Thrift server), `make cluster-up` brings back what is down.
    """
    stack.state.mkdir(parents=True, exist_ok=True)
    stack = ensure_secrets(stack)
    started: list[str] = []
    for component in components(stack):
        # A Thrift server that outlived a worker took that worker's share on the others (it
        # asks for one core per worker): restarted, it spreads over all of them again and
        # leaves every worker a core for the runs.
        respread = component.name == "thrift" and any(n.startswith("spark-worker") for n in started)
        if _safe(component.healthy) and not respread:
            continue
        started.append(component.name)
        began = time.monotonic()
        stop(stack, component.name)  # a process that no longer answers: make room for a new one
        component.start(stack)
        print(f"  {component.name:<18} up ({time.monotonic() - began:.0f}s)", flush=True)
    if not started:
        print("the stack is already up")
    return stack


@dataclass(frozen=True)
class Component:
    name: str
    where: str
    healthy: Callable[[], bool]
    start: Callable[[Stack], None]


def components(stack: Stack) -> list[Component]:
    """Each server of the stack, in the order they start: where it listens, how it is asked."""
    spark = f"spark://{stack.host('SPARK')}:{stack.port('SPARK')}"
    out = [
        Component("postgres", f"postgresql://{stack.host('PG')}:{stack.port('PG')}",
                  lambda: _pg_ready(stack), start_postgres),
        Component("spark-master", f"{spark} (UI {stack.spark_ui})",
                  lambda: "workers" in get_json(f"{stack.spark_ui}/json"), start_spark_master),
    ]  # fmt: skip
    for n in range(1, stack.workers + 1):
        out.append(
            Component(f"spark-worker-{n}",
                      f"UI http://{stack.host('SPARK')}:{_worker_ui_port(stack, n)}",
                      lambda n=n: _worker_alive(stack, n),
                      lambda stack, n=n: start_spark_worker(stack, n))
        )  # fmt: skip
    out += [
        Component("s3", stack.env["LAKEHOUSE_S3_ENDPOINT_URL"],
                  lambda: port_open(stack.host("S3"), stack.port("S3")), start_s3),
        Component("thrift", f"thrift://{stack.host('THRIFT')}:{stack.port('THRIFT')}",
                  lambda: port_open(stack.host("THRIFT"), stack.port("THRIFT")), start_thrift),
        Component("pushgateway", _url(stack, "PUSHGATEWAY"),
                  lambda: prometheus.ready(_url(stack, "PUSHGATEWAY")), start_pushgateway),
        Component("prometheus", _url(stack, "PROMETHEUS"),
                  lambda: prometheus.ready(_url(stack, "PROMETHEUS")), start_prometheus),
        Component("dagster-webserver", stack.dagster_url,
                  lambda: bool(get_json(f"{stack.dagster_url}/server_info")), start_webserver),
        Component("dagster-daemon", "(through the webserver)",
                  lambda: daemons_healthy(stack), start_daemon),
    ]  # fmt: skip
    return out


def _worker_alive(stack: Stack, n: int) -> bool:
    """Its process runs and the master counts it ALIVE (by its UI port: ids change on restart)."""
    pid = _pid(stack, f"spark-worker-{n}")
    if pid is None or not _alive(pid):
        return False
    ui = f":{_worker_ui_port(stack, n)}"
    workers = get_json(f"{stack.spark_ui}/json")["workers"]
    return any(w["state"] == "ALIVE" and w["webuiaddress"].endswith(ui) for w in workers)


def status(stack: Stack, quiet: bool = False) -> bool:
    """Each component, where it listens and whether it answers; True when all do."""
    all_up = True
    for component in components(stack):
        healthy = _safe(component.healthy)
        all_up &= healthy
        if not quiet:
            print(f"  {component.name:<18} {'up  ' if healthy else 'DOWN'}  {component.where}")
    return all_up


def _marked(stack: Stack) -> list[int]:
    """Every process with this stack's marker in its environment (children included)."""
    marker = f"{MARKER}={stack.state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(stack: Stack, name: str) -> None:
    """Stop one component by its pid (its process group: a server and its children)."""
    if name == "postgres":
        stop_postgres(stack)
        return
    pid = _pid(stack, name)
    if pid is not None and _alive(pid):
        _stop_group(pid)
    (stack.pids / f"{name}.pid").unlink(missing_ok=True)


def down(stack: Stack) -> None:
    """Stop what ``up`` started, newest first, then anything still carrying the marker."""
    for component in reversed(components(stack)):
        if component.name != "postgres":
            stop(stack, component.name)
    for pid in _marked(stack):
        _stop_group(pid, group=False)
    stop_postgres(stack)
    left = [p for p in _marked(stack) if _alive(p)]
    if left:
        raise ClusterError(f"processes still running after down: {left}")


def _stop_group(pid: int, group: bool = True, grace_s: float = 20) -> None:
    kill = os.killpg if group else os.kill
    try:
        kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)


def clean(stack: Stack) -> None:
    if status(stack, quiet=True) or _marked(stack):
        down(stack)
    shutil.rmtree(stack.state, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=("up", "status", "down", "clean", "env", "exec"))
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="exec: the command to run")
    args = parser.parse_args(argv)
    stack = Stack.from_env()
    try:
        if args.command == "up":
            stack = up(stack)
            status(stack)
            print(f"the UI: {stack.dagster_url}; state: {stack.state}")
        elif args.command == "status":
            sys.exit(0 if status(stack) else 1)
        elif args.command == "down":
            down(stack)
            print(f"stopped; data kept in {stack.state}")
        elif args.command == "clean":
            clean(stack)
            print(f"removed {stack.state}")
        elif args.command == "env":  # the stack's environment for a shell (no secrets)
            for key in read_env_file(ENV_FILE, os.environ):
                print(f"export {key}={stack.env[key]!r}")
        else:  # a command in the stack's environment, secrets included (never printed)
            command = [a for a in args.argv if a != "--"]
            if not command:
                sys.exit("usage: python -m tools.cluster exec -- <command> [args]")
            os.execvpe(command[0], command, stack.env)
    except ClusterError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
