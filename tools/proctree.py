"""A process and everything it starts: peak memory and the JVMs among them, sampled from /proc.

`/usr/bin/time` reports one process; a Dagster run is a Python process, its Spark JVM and
whatever else the steps start (dbt, a JVM of dbt's own). `TreeSampler` walks /proc every
``interval_s`` and keeps the peak of the summed resident memory of the whole tree, and the
process ids of every JVM in it that was not there when sampling began. A child caught before
its ``exec``, still in its parent's memory, is left out (``on_their_own``).

    with TreeSampler(os.getpid()) as tree:
        job.execute_in_process(...)
    tree.peak_rss_bytes, tree.jvms_started
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
# kcmp(2): whether two processes share a kernel resource; KCMP_VM compares address spaces.
KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)
KCMP_VM = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    name: str
    rss_bytes: int


def processes() -> dict[int, Process]:
    """Every process /proc lists now (those that end while it is read are skipped)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (process := read(int(entry.name))) is not None:
            found[process.pid] = process
    return found


def read(pid: int) -> Process | None:
    """The process as /proc shows it now; None once it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # `pid (name) state ppid ...`: the name may hold spaces and parentheses.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return Process(pid, int(fields[1]), name, int(fields[21]) * PAGE)


def tree(root: int, table: dict[int, Process]) -> list[Process]:
    """``root`` and its descendants in ``table``."""
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.parent, []).append(process.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(table[pid])
        todo.extend(children.get(pid, []))
    return found


def shares_memory(pid: int, other: int) -> bool:
    """Whether two processes run in one address space (False when the kernel will not say)."""
    if KCMP is None:
        return False
    return _LIBC.syscall(KCMP, pid, other, KCMP_VM, 0, 0) == 0


def on_their_own(members: list[Process]) -> list[Process]:
    """``members`` less any child still in its parent's address space: between the ``vfork``
    of ``posix_spawn`` (how a JVM starts ``chmod`` for each file it writes, how Python starts a
    subprocess) and its ``exec``, the child shows its parent's command line and resident
    memory. Summed, the parent would count twice. Its name is not the parent's to go by: it
    is the name of the thread that spawned it (a JVM's ``Executor task l``, not ``java``), so
    only the kernel's answer (kcmp) decides.

    A child the kernel finds on its own is read again, after that answer: read before it, the
    child may have been in its parent's memory then and exec'd since, and its figure would be
    the parent's (most likely the 3.7 GiB transients of runs whose JVM held about 1.7). Its own
    memory cannot turn back into its parent's, so the figure read after the answer is its own,
    where the kernel answers (kcmp; the tests check that it does here: a container's seccomp
    profile may refuse it, and then a child is counted as it reads)."""
    inside = {p.pid for p in members}
    found = []
    for p in members:
        if p.parent not in inside:
            found.append(p)
        elif not shares_memory(p.pid, p.parent) and (now := read(p.pid)) is not None:
            found.append(now)
    return found


def is_jvm(process: Process) -> bool:
    """A Java virtual machine that does work: not the one `spark-submit` runs for a moment
    first, only to compute the real JVM's command line (``org.apache.spark.launcher.Main``)."""
    if process.name != "java":
        return False
    try:
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    except OSError:
        return False
    # Empty: caught inside its exec (named java before its arguments are in place) or dead
    # and not yet reaped: not known as either. A JVM that does work lives on and is counted
    # at a later sample; spark-submit's launcher, caught so, counted as a second JVM once.
    return bool(command) and b"org.apache.spark.launcher.Main" not in command


class TreeSampler:
    """Samples the tree under ``root`` in a background thread, from ``__enter__`` to
    ``__exit__``; ``include_root=False`` leaves the root's own memory out (a benchmark's)."""

    def __init__(self, root: int, interval_s: float = 0.25, include_root: bool = True) -> None:
        self.root, self.interval_s, self.include_root = root, interval_s, include_root
        self.peak_rss_bytes = 0
        self.jvms_started: set[int] = set()
        self._before: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        table = processes()
        members = on_their_own(tree(self.root, table))
        if not self.include_root:
            members = [p for p in members if p.pid != self.root]
        self.peak_rss_bytes = max(self.peak_rss_bytes, sum(p.rss_bytes for p in members))
        self.jvms_started |= {p.pid for p in members if is_jvm(p)} - self._before

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self._before = {p.pid for p in tree(self.root, processes()) if is_jvm(p)}
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
