"""The production stack's files, checked without Docker (which does not run on these machines).

deployment/compose.yaml must be valid Compose, read only variables deployment/cluster.env
defines, and give every container the container network's addresses; cluster.env must hold no
secret; the image must install exactly uv.lock and check the one jar it downloads.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spark_jobs.session import ICEBERG_JAR

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENT = REPO / "deployment"
COMPOSE = DEPLOYMENT / "compose.yaml"
CLUSTER_ENV = DEPLOYMENT / "cluster.env"
DOCKERFILE = DEPLOYMENT / "Dockerfile"

# ${NAME} in cluster.env: a key defined above it.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ... and
# $NAME; $$ is a literal dollar.
INTERPOLATION = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+][^}]*)?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def cluster_env_lines() -> dict[str, str]:
    """cluster.env's keys and their values as written (``${NAME}`` not yet expanded)."""
    lines: dict[str, str] = {}
    for number, line in enumerate(CLUSTER_ENV.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), (
            f"cluster.env:{number}: not KEY=VALUE: {line}"
        )
        for name in ENV_REFERENCE.findall(value):
            assert name in lines, f"cluster.env:{number}: ${{{name}}} is not a key above it"
        lines[key] = value
    return lines


def cluster_env() -> dict[str, str]:
    """cluster.env as every reader sees it: each ``${NAME}`` replaced by the earlier key."""
    values: dict[str, str] = {}
    for key, value in cluster_env_lines().items():
        values[key] = ENV_REFERENCE.sub(lambda m: values[m.group(1)], value)
    return values


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def strings(node: object) -> list[str]:
    """Every string value in a YAML tree (Compose interpolates values, not keys)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def project_services() -> dict[str, dict]:
    """The services built from deployment/Dockerfile."""
    return {name: svc for name, svc in compose()["services"].items() if "build" in svc}


def test_compose_file_is_valid_compose():
    """The Compose specification's schema as vendored by check-jsonschema (a dev dependency)."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version" not in compose(), "the Compose specification has no version key"


def test_compose_interpolates_only_what_cluster_env_defines():
    defined = cluster_env()
    undefined, malformed = set(), []
    for value in strings(compose()):
        text = value.replace("$$", "")
        for match in INTERPOLATION.finditer(text):
            name = match.group("braced") or match.group("bare")
            op = match.group("op") or ""
            if name not in defined and not op.lstrip(":").startswith("-"):
                undefined.add(name)
        if "$" in INTERPOLATION.sub("", text):
            malformed.append(value)  # compose would refuse it: a $ meant for a shell needs $$
    assert not undefined, f"not in cluster.env and without a :-default: {sorted(undefined)}"
    assert not malformed, f"a $ that is not an interpolation (write $$): {malformed}"


def test_containers_never_see_a_one_box_address():
    """Compose expands cluster.env's ${...} against its loopback hosts when it reads it: every
    key built from a host or port the compose file overrides must be overridden too, in every
    service."""
    lines = cluster_env_lines()
    overrides = compose()["x-lakehouse-env"]
    stale = set(overrides) | {"CLUSTER_HOST"}

    def built_from_stale(key: str) -> bool:
        refs = ENV_REFERENCE.findall(lines[key])
        return any(ref in stale or built_from_stale(ref) for ref in refs)

    missing = [key for key in lines if key not in overrides and built_from_stale(key)]
    assert not missing, f"built from a one-box host or port, not overridden: {missing}"
    for name, service in compose()["services"].items():
        assert service.get("env_file") == "cluster.env", name
        environment = service.get("environment", {})
        wrong = {k: environment.get(k) for k, v in overrides.items() if environment.get(k) != v}
        assert not wrong, f"{name} lacks the container network's values: {wrong}"


def test_services_read_only_the_secrets_they_mount():
    spec = compose()
    declared = spec["secrets"]
    for name, service in spec["services"].items():
        mounted = set(service.get("secrets", []))
        referenced = set()
        for key, value in service.get("environment", {}).items():
            if key.endswith("_FILE"):  # /run/secrets/<name>, or MinIO's bare <name>
                referenced.add(str(value).removeprefix("/run/secrets/"))
        for value in strings(service.get("command", [])):
            referenced.update(re.findall(r"/run/secrets/([a-z0-9_]+)", value))
        assert referenced == mounted, f"{name}: reads {referenced}, mounts {mounted}"
        assert mounted <= set(declared), name
    for name, secret in declared.items():
        assert secret == {"file": f"./compose/secrets/{name}"}, name
    assert "deployment/compose/secrets/" in (REPO / ".gitignore").read_text().splitlines()


def test_cluster_env_holds_no_secret():
    names = [k for k in cluster_env() if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", k)]
    assert not names, f"secrets belong in Docker secrets or secrets.env, not cluster.env: {names}"


def test_instance_and_workspace_match_the_services():
    spec = compose()
    one_box = yaml.safe_load((DEPLOYMENT / "cluster" / "dagster.yaml").read_text())
    instance = yaml.safe_load((DEPLOYMENT / "compose" / "dagster.yaml").read_text())
    assert instance["storage"] == one_box["storage"]
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["run_retries"]["enabled"] and instance["run_monitoring"]["enabled"]

    workspace = yaml.safe_load((DEPLOYMENT / "compose" / "workspace.yaml").read_text())
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    command = spec["services"][server["host"]]["command"]
    assert command[command.index("-p") + 1] == str(server["port"])
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "/app/deployment/compose/workspace.yaml" in spec["services"][name]["command"]


def test_postgres_init_creates_what_cluster_env_names():
    env = cluster_env()
    script = (DEPLOYMENT / "compose" / "postgres-init.sh").read_text()
    users = {env["LAKEHOUSE_CATALOG_USER"], env["LAKEHOUSE_SOURCE_USER"], env["DAGSTER_PG_USER"]}
    databases = {
        env["LAKEHOUSE_CATALOG_URI"].rsplit("/", 1)[1],
        env["LAKEHOUSE_SOURCE_URL"].rsplit("/", 1)[1],
        env["DAGSTER_PG_DB"],
    }
    assert set(re.findall(r"CREATE ROLE (\w+) LOGIN", script)) == users
    (owner,) = users
    assert set(re.findall(rf"CREATE DATABASE (\w+) OWNER {owner};", script)) == databases


def test_image_installs_the_lock_and_checks_the_jar_it_downloads():
    dockerfile = DOCKERFILE.read_text()
    instructions = re.sub(r"\\\n", " ", dockerfile)  # continuation lines joined
    sync = re.search(r"^RUN .*\buv sync\b.*$", instructions, re.MULTILINE)
    assert sync and "--frozen" in sync.group(0) and "--no-dev" in sync.group(0)
    # Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set nothing else caches it.
    assert "--compile-bytecode" in sync.group(0) or "UV_COMPILE_BYTECODE=1" in instructions
    lock = instructions.index("COPY pyproject.toml uv.lock ./")
    assert lock < sync.start() < instructions.index("COPY --exclude=**/__pycache__ spark_jobs")

    # The AWS bundle is the Iceberg version of the Spark runtime jar the project loads.
    runtime_version = re.fullmatch(r"iceberg-spark-runtime-3\.5_2\.12-(.+)\.jar", ICEBERG_JAR)
    assert runtime_version
    assert f"ARG ICEBERG_VERSION={runtime_version.group(1)}\n" in dockerfile
    assert re.search(r"^ARG ICEBERG_AWS_BUNDLE_SHA256=[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    assert 'echo "${ICEBERG_AWS_BUNDLE_SHA256}  $jar" | sha256sum -c -' in dockerfile
    assert "LAKEHOUSE_EXTRA_JARS=/opt/lakehouse/jars/iceberg-aws-bundle-" in dockerfile

    # No COPY takes deployment/ (or the context) whole: the secrets folder stays out.
    for copy in re.findall(r"^COPY (.*)$", instructions, re.MULTILINE):
        sources = [w for w in copy.split()[:-1] if not w.startswith("--") and w != "<<'EOF'"]
        for source in sources:
            assert source.rstrip("/") not in {".", "deployment", "deployment/compose"}, copy
