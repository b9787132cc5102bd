"""The processes a chaos run starts, kills and restarts: a real ``manage.py qcluster``.

The qcluster runs in its own process group (``start_new_session``), so SIGKILL of the group
takes the whole cluster down at once, as an OOM kill of its container would.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


def _ppids() -> dict[int, int]:
    """``{pid: parent pid}`` of every process visible in /proc."""
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, breadth first."""
    ppids = _ppids()
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in ppids.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _sockets_to_port(port: int) -> set[str]:
    """``socket:[inode]`` names of TCP connections whose remote port is ``port``."""
    names = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == port:
                    names.add(f"socket:[{cols[9]}]")
    return names


def _talks_to(pid: int, sockets: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return True
    return False


_LIVE: set[QCluster] = set()


def kill_all() -> None:
    """SIGKILL every qcluster this process started (from a signal handler on the way out)."""
    for qcluster in list(_LIVE):
        qcluster.closed = True
        if qcluster.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(qcluster.process.pid, signal.SIGKILL)


class QCluster:
    """One ``manage.py qcluster`` with ``env``, logging to ``log``; start, kill, restart."""

    def __init__(self, env: dict[str, str], log: IO[str], kube_port: int) -> None:
        self.env = env
        self.log = log
        self.kube_port = kube_port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.closed = False
        # Held across a restart, so close() cannot slip in between its kill and its start.
        self._lock = threading.RLock()

    def start(self) -> None:
        with self._lock:
            if not self.closed:
                self._spawn()

    def restart(self, down_for: float) -> None:
        """SIGKILL the whole cluster, stay down ``down_for`` seconds, start it again."""
        with self._lock:
            self.kill()
            time.sleep(down_for)
            self.start()

    def close(self) -> None:
        """Kill the cluster for good (waits for a restart in progress); start() is a no-op."""
        with self._lock:
            self.closed = True
            self.kill()
            _LIVE.discard(self)

    def _spawn(self) -> None:
        _LIVE.add(self)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group and wait for the cluster to be gone."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        # Orphans of the group (workers whose parent died first) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: django-q2 finishes running tasks first)."""
        self.kill(signal.SIGTERM)

    def kill_worker(self, pick: float, wait: float = 15.0) -> str:
        """SIGKILL one worker: a cluster process holding a connection to kubesim (it has run
        a rollout job). ``pick`` in [0, 1) chooses among them. The pusher and the monitor
        are spared: killing one while it holds a multiprocessing queue's lock can wedge the
        whole cluster (seen with seed 8 at 300 sites; see the README's chaos notes), which a
        liveness probe must catch, not the engine. Waits up to ``wait`` seconds for a worker
        to have run a job, then up to ``wait`` more for one outside a queue's pipe I/O
        (``_kill_unless_in_a_queue``). Returns what was killed ("" for nothing)."""
        workers: list[int] = []
        deadline = time.monotonic() + wait
        while not workers and time.monotonic() < deadline:
            with self._lock:
                if self.alive and self.process is not None:
                    below = set(descendants(self.process.pid))
                    below -= _direct_children(self.process.pid)
                    sockets = _sockets_to_port(self.kube_port)
                    workers = sorted(p for p in below if _talks_to(p, sockets))
            if not workers:
                time.sleep(0.5)
        if not workers:
            return ""  # no worker ran a rollout job in time: nothing killed
        start = int(pick * len(workers)) % len(workers)
        order = workers[start:] + workers[:start]
        deadline = time.monotonic() + wait  # a fresh budget to catch one outside a queue
        while time.monotonic() < deadline:
            for victim in order:
                if _kill_unless_in_a_queue(victim):
                    return f"worker {victim}"
            time.sleep(0.1)
        # Every candidate sat in a queue's pipe all along (one idle worker, no jobs coming):
        # kill the picked one anyway, as a real OOM kill would; the fault is still injected.
        with contextlib.suppress(ProcessLookupError):
            os.kill(order[0], signal.SIGKILL)
        return f"worker {order[0]} (inside a queue's pipe I/O)"


# System call numbers of read, write, pread64, pwrite64, readv and writev, by machine.
_PIPE_IO_SYSCALLS = {"x86_64": frozenset({0, 1, 17, 18, 19, 20}),
                     "aarch64": frozenset({63, 64, 65, 66, 67, 68})}  # fmt: skip


def _kill_unless_in_a_queue(pid: int) -> bool:
    """SIGKILL ``pid`` unless one of its threads is reading or writing a pipe; True if killed.

    An idle django-q2 worker blocks in ``task_queue.get()`` holding the queue's reader lock
    (a process-shared semaphore) while it reads the pipe, and a worker's queue feeder thread
    holds the writer lock while it writes one. Killed there, the lock is never released and
    every other worker, and every replacement, blocks on it for good: the cluster takes no
    more jobs (seen with seed 1 at 8 sites on PostgreSQL). A real OOM kill can land there
    too, which is the liveness probe's business (README), not the engine's. So the process
    is stopped (SIGSTOP) first, its threads' system calls read from /proc, and it is killed
    only outside pipe I/O, or let go on (SIGCONT).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
        try:
            if _in_pipe_io(pid):
                return False
            os.kill(pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # lets a spared one go on; no-op once killed
    return True


def _in_pipe_io(pid: int) -> bool:
    """Whether a thread of stopped ``pid`` is in a read or write system call on a pipe
    (False when /proc does not say: then the kill goes ahead, as it always did)."""
    calls = _PIPE_IO_SYSCALLS.get(platform.machine())
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # SIGSTOP takes effect asynchronously
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("T", "t"):
            break
        time.sleep(0.005)
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
        except OSError:
            return False
        if calls is None or not fields or not fields[0].isdigit():
            continue  # "running" (user space) or "-1" (stopped outside a system call)
        if int(fields[0]) in calls:
            with contextlib.suppress(OSError, ValueError):
                if os.readlink(f"/proc/{pid}/fd/{int(fields[1], 16)}").startswith("pipe:"):
                    return True
    return False


def _direct_children(pid: int) -> set[int]:
    return {p for p, parent in _ppids().items() if parent == pid}
