"""Serve the Dagster UI on a free port and save pictures of what it shows after a run.

    python -m tools.screenshot deployment/

saves ``asset-graph.png`` (the Silver group's graph, expanded: each asset's checks, partitions
and kinds) and ``silver-checks.png`` (silver.orders' checks). Uses Debian's headless Chromium;
`make screenshot` installs it when it can.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from spark_jobs.settings import REPO_ROOT

_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port for a server this process starts, from 10000-19999.

    Not a kernel-picked port: those come from the ephemeral range (32768-60999), where any
    client socket or a Spark daemon's own port 0 can take it between this check and the
    server's bind (a cluster test's Pushgateway once lost its port that way). Below that range
    only servers bind, and 20000-29999 is left to the runs' Thrift ports
    (``Settings.run_thrift_port``). A port is handed out once per process; the bind check
    skips ports another process already holds (two pytest workers can still pick the same
    free port at the same moment, 1 in 10,000, as with the kernel's pick).
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 20000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port in 10000-19999: is something holding them all?")


@contextlib.contextmanager
def webserver(timeout: float = 120.0, dagster_home: Path | None = None) -> Iterator[str]:
    """``dagster-webserver`` for workspace.yaml on a free loopback port; yields its URL.

    ``dagster_home`` serves another instance's runs (a test's), not ``$DAGSTER_HOME``'s.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "dagster_webserver",
        "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        env = {**os.environ, **({"DAGSTER_HOME": str(dagster_home)} if dagster_home else {})}
        server = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(url, server, log, timeout)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _wait_until_up(url: str, server: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode()[-2000:]
                raise RuntimeError(f"dagster-webserver did not start:\n{tail}") from None
            time.sleep(0.5)


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(payload["errors"])
    return payload["data"]


SKIP_DIALOGS = """
for (const b of document.querySelectorAll('button')) {
  if (['Skip', 'Dismiss', 'Close'].includes(b.innerText.trim())) b.click();
}
"""


PAGES = {
    "asset-graph.png": "/locations/lakehouse/asset-groups/silver",
    "silver-checks.png": "/assets/silver/orders?view=checks",
}
# What each page shows once its slower queries (the checks' outcomes) have rendered.
READY = {"asset-graph.png": r"\d+ / \d+ Passed", "silver-checks.png": r"Succeeded"}


async def _capture(debug_port: int, url: str, target: Path) -> str:
    """Drive the page over the DevTools protocol: dismiss the welcome dialog, capture it, and
    return the page's text (what a reader of the picture sees, for a test to check)."""
    import asyncio
    import base64

    import websockets

    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=10) as r:
        page = next(t for t in json.loads(r.read()) if t["type"] == "page")
    async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
        ids = iter(range(1, 10_000))

        async def call(method: str, **params):
            msg_id = next(ids)
            await ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == msg_id:
                    return reply.get("result", {})

        await call("Emulation.setDeviceMetricsOverride", width=2400, height=1500,
                   deviceScaleFactor=1, mobile=False)  # fmt: skip
        await call("Page.navigate", url=url)
        await asyncio.sleep(12)
        await call("Runtime.evaluate", expression=SKIP_DIALOGS)
        await asyncio.sleep(2)
        # A busy machine renders the checks' outcomes later: wait for them, up to a minute.
        ready = READY.get(target.name)
        for _ in range(60):
            text = await call("Runtime.evaluate", expression="document.body.innerText")
            if ready is None or re.search(ready, text["result"]["value"]):
                break
            await asyncio.sleep(1)
        shot = await call("Page.captureScreenshot", format="png")
        target.write_bytes(base64.b64decode(shot["data"]))
        text = await call("Runtime.evaluate", expression="document.body.innerText")
        return text["result"]["value"]


def screenshot(url: str, target: Path) -> str:
    """Save a picture of the page at ``url`` in headless Chromium; return the page's text."""
    import asyncio

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("error: chromium not found: apt-get install chromium")
    target.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Chromium's helpers may still write to the profile as it exits: tolerate that on cleanup.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        chrome = subprocess.Popen(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--hide-scrollbars", f"--remote-debugging-port={port}", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            return asyncio.run(_capture(port, url, target))
        finally:
            chrome.terminate()
            chrome.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    with webserver() as url:
        for name, page in PAGES.items():
            screenshot(f"{url}{page}", args.folder / name)
            print(f"saved {args.folder / name}")


if __name__ == "__main__":
    main()
