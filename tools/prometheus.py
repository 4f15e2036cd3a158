"""Prometheus and its Pushgateway, from Debian's packages, on loopback.

`make cluster-up` starts both next to the other services; the tests start their own. The
Prometheus configuration is deployment/prometheus/prometheus.yml with its target (and, for
tests, its intervals) replaced, and the alert rules beside it, unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from spark_jobs.settings import REPO_ROOT, Settings
from tools.screenshot import free_port

CONFIG_DIR = REPO_ROOT / "deployment" / "prometheus"
INSTALL = "deployment/system-deps.sh prometheus prometheus-pushgateway"


def binary(name: str) -> str:
    """The server's executable, or one line saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run: {INSTALL}")
    return found


def pushgateway_command(host: str, port: int, persist: Path | None = None) -> list[str]:
    """The Pushgateway on ``host:port``; with ``persist``, the last pushes survive a restart."""
    command = [binary("prometheus-pushgateway"), f"--web.listen-address={host}:{port}"]
    if persist is not None:
        command += [f"--persistence.file={persist}", "--persistence.interval=1m"]
    return command


def write_config(directory: Path, pushgateway: str, interval: str | None = None) -> Path:
    """prometheus.yml for one deployment: the shipped file scraping ``pushgateway``
    (host:port), with its rules beside it; ``interval`` overrides scrape and evaluation."""
    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    config["scrape_configs"][0]["static_configs"] = [{"targets": [pushgateway]}]
    if interval is not None:
        config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    directory.mkdir(parents=True, exist_ok=True)
    for rules in config["rule_files"]:
        shutil.copy(CONFIG_DIR / rules, directory / rules)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def prometheus_command(config: Path, data: Path, host: str, port: int) -> list[str]:
    return [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={host}:{port}",
    ]


def ready(url: str) -> bool:
    """Whether a Prometheus (or Pushgateway) at ``url`` says it is ready."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def query(url: str, promql: str) -> list[dict]:
    """An instant PromQL query through Prometheus's HTTP API: the result's samples."""
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(address, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus did not answer {promql!r}: {body}")
    return body["data"]["result"]


def by_label(url: str, promql: str, label: str) -> dict[str, float]:
    """``label``'s value -> the sample's value, for what Prometheus has scraped so far."""
    return {s["metric"][label]: float(s["value"][1]) for s in query(url, promql)}


def active_alerts(url: str) -> list[dict]:
    """The alerts Prometheus holds pending or firing (``/api/v1/alerts``)."""
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=10) as response:
        return json.load(response)["data"]["alerts"]


def check_rules() -> subprocess.CompletedProcess:
    """``promtool check rules`` and ``test rules`` on the shipped files."""
    promtool = binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"],
        cwd=CONFIG_DIR,
        capture_output=True,
        text=True,
    )
    if checked.returncode:
        return checked
    return subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=CONFIG_DIR,
        capture_output=True,
        text=True,
    )


@contextlib.contextmanager
def serving(
    directory: Path,
    interval: str | None = "1s",
    timeout: float = 60.0,
    ports: tuple[int, int] | None = None,
) -> Iterator[tuple[str, str]]:
    """A Pushgateway and a Prometheus scraping it, on loopback (``ports``, else free ones),
    for as long as the block runs; yields their URLs. Each writes its log under ``directory``."""
    gateway_port, prometheus_port = ports or (free_port(), free_port())
    gateway = f"http://127.0.0.1:{gateway_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    config = write_config(directory / "config", f"127.0.0.1:{gateway_port}", interval)
    commands = {
        "pushgateway": pushgateway_command(
            "127.0.0.1", gateway_port, directory / "pushgateway.metrics"
        ),
        "prometheus": prometheus_command(config, directory / "data", "127.0.0.1", prometheus_port),
    }
    processes = []
    try:
        for name, command in commands.items():
            log = (directory / f"{name}.log").open("w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for url in (gateway, prometheus):
            while not ready(url):
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    logs = {n: (directory / f"{n}.log").read_text()[-1500:] for n in commands}
                    raise RuntimeError(f"{url} did not get ready: {logs}")
                time.sleep(0.2)
        # Ready, but ours? A server already on the port (Debian's own, started when the
        # package was installed) answers while ours died on bind.
        time.sleep(0.5)
        exited = [n for n, p in zip(commands, processes, strict=True) if p.poll() is not None]
        if exited:
            logs = {n: (directory / f"{n}.log").read_text()[-500:] for n in exited}
            raise RuntimeError(f"{', '.join(exited)} exited (is its port taken?): {logs}")
        yield gateway, prometheus
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def main() -> None:
    """`make prometheus`: both servers in the foreground, next to `make dev`, until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--pushgateway-port", type=int, default=9091)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    args = parser.parse_args()
    directory = Settings.from_env().home / "prometheus"
    # A SIGTERM (a supervisor, `timeout`) stops both servers too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ports = (args.pushgateway_port, args.prometheus_port)
    try:
        with serving(directory, interval=None, ports=ports) as (gateway, prometheus):
            print(f"Pushgateway {gateway}, Prometheus {prometheus} (alerts: {prometheus}/alerts)")
            print(f"push from the runs: export LAKEHOUSE_PUSHGATEWAY_URL={gateway}, then make dev")
            print(f"logs and data: {directory}; Ctrl-C stops both", flush=True)
            while True:
                time.sleep(3600)
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
