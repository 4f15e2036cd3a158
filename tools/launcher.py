"""A run launcher whose runs the daemon's run monitoring can see die.

Dagster's ``DefaultRunLauncher`` starts each run as a process on this machine but cannot tell
the monitoring daemon whether that process still lives. Its code server notices a dead run
worker while the server itself lives; when both go (`kill -9` of the process tree, the OOM
killer, a restart), or the run was started from the CLI, which has no code server, the run
stays STARTED forever: no failure, no alert, no retry, and a queue limited to one run stays
blocked. This launcher answers the health
check from the process table: the worker's pid is in the run's own event log ("Started
process for run (pid: N)"), and a process with that pid must have started before the worker
wrote that event, so a recycled pid is not mistaken for the worker. Monitoring then marks the
run failed within a poll interval; the failure sensor alerts and the daemon's run retries
start it again (``deployment/dagster.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

# Not exported by dagster: the types of RunLauncher.check_run_worker_health, which this overrides.
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a liveness check of the run worker process."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        started = worker_start(self._instance, run.run_id)
        if started is None:  # not started yet: the start timeout covers a launch that never starts
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        pid, reported_at = started
        if worker_alive(pid, reported_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"the run worker process (pid {pid}) is gone: killed or crashed"
        )


def worker_start(instance, run_id: str) -> tuple[int, float] | None:
    """(pid, when it said so) of the process executing the run, from its engine events.

    A launched run's worker says "Started process for run (pid: N)"; a run started from the
    CLI (`dagster job execute`) says "Executing steps in process (pid: N)". Both carry the pid
    as metadata, so a dead CLI run is failed too, the next time a daemon looks.
    """
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in reversed(records):  # the newest wins (a resumed run)
        event = record.event_log_entry
        data = event.dagster_event.engine_event_data if event.dagster_event else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None:
            return int(pid.value), event.timestamp
    return None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def worker_alive(pid: int, reported_at: float, slack_s: float = 2.0) -> bool:
    """A live (not zombie) process with this pid that started before it reported itself."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
    state, start_ticks = fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    started_at = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    return state not in ("Z", "X") and started_at <= reported_at + slack_s
