"""The process-tree sampler behind the benchmark's memory figures and the one-JVM tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from tools import proctree
from tools.proctree import Process, is_jvm, on_their_own, processes, read, shares_memory

# /proc and one sleeping child: no Spark, no servers.
pytestmark = pytest.mark.fast


def test_a_child_still_in_its_parents_memory_is_not_counted_twice():
    # Between posix_spawn's vfork and its exec (how the JVM starts `chmod` for each file it
    # writes) a child is a second process in its parent's address space, with the parent's
    # resident memory. That instant is too brief to catch on purpose, so a thread of
    # this process stands in for it: it has an id of its own in /proc, in the same address
    # space. The kernel's answer (kcmp) is real; only the tree is arranged.
    ready, done, ids = threading.Event(), threading.Event(), []

    def wait() -> None:
        ids.append(threading.get_native_id())
        ready.set()
        done.wait()

    thread = threading.Thread(target=wait)
    thread.start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ready.wait()
        table = processes()
        me = table[os.getpid()]
        # A spawned child is named, until it execs, after the thread that spawned it: a JVM's
        # shows a thread's name (`Executor task l`), not `java`. One named like this process
        # is also counted when it has its own memory.
        in_my_memory = replace(me, pid=ids[0], parent=me.pid, name="Executor task l")
        on_its_own = replace(table[child.pid], name=me.name)
        assert shares_memory(me.pid, me.pid), "kcmp(2) is not available: peaks count twice"
        counted = on_their_own([me, in_my_memory, on_its_own])
        assert [p.pid for p in counted] == [me.pid, child.pid]
    finally:
        done.set()
        thread.join()
        child.kill()
        child.wait()


def test_a_child_read_in_its_parents_memory_and_on_its_own_by_the_check_counts_its_own():
    # The other side of that instant: /proc is read while the child is still in its
    # parent's memory (its figure is the parent's), and by the time the kernel is asked the
    # child has exec'd and has memory of its own. The figure counted is read after the answer.
    child = subprocess.Popen(["sleep", "30"])
    try:
        me, its_own = processes()[os.getpid()], read(child.pid)
        assert its_own is not None
        assert shares_memory(me.pid, me.pid), "kcmp(2) is not available: peaks count twice"
        read_before_its_exec = replace(its_own, rss_bytes=me.rss_bytes)
        counted = on_their_own([me, read_before_its_exec])
        # The child's figure is read again (sleep may still be mapping its libraries: compare
        # what does not move, and that it is the child's own, far below this process's).
        assert [(p.pid, p.name) for p in counted] == [(me.pid, me.name), (child.pid, "sleep")]
        assert counted[1].rss_bytes < me.rss_bytes / 4
    finally:
        child.kill()
        child.wait()


def test_a_java_process_counts_as_a_jvm_once_its_command_line_says_it_does_work(monkeypatch):
    """spark-submit's launcher computes the real JVM's command line and ends: not counted; nor
    is a java process whose command line cannot be read yet (inside its exec) or any more."""
    java = Process(pid=1, parent=0, name="java", rss_bytes=0)
    for command, counted in (
        (b"java\0-cp\0jars/*\0org.apache.spark.deploy.SparkSubmit\0", True),
        (b"java\0-cp\0jars/*\0org.apache.spark.launcher.Main\0", False),
        (b"", False),
    ):
        monkeypatch.setattr(proctree.Path, "read_bytes", lambda _, c=command: c)
        assert is_jvm(java) is counted, command
    assert not is_jvm(Process(pid=1, parent=0, name="python3", rss_bytes=0))
