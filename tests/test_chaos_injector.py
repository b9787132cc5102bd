"""The chaos fault injector's own contract: once the rollouts are over, ``finish`` injects the
first-round kinds the schedule had not reached yet, without their gaps, and nothing else; and
"SIGKILL worker" never kills a worker inside a queue's pipe I/O (holding its lock).

A faster machine (or a faster kubesim) ends the rollouts sooner; without ``finish`` the last
kinds of the first round were never injected, and which ones depended on the machine. A
worker killed while it held the task queue's reader lock wedged the whole qcluster (CI, seed
1 on PostgreSQL): a fault no engine can survive, so not one the run should inject.
"""

from __future__ import annotations

import time

import pytest

from bench.chaos.faults import FaultInjector
from bench.chaos.plan import Fault
from kubesim import KubeSim

SLOW = 30.0  # a gap no test waits out


@pytest.fixture
def sim():
    """A kubesim of its own: the faults restart it, which the session's sim must not see."""
    with KubeSim() as sim:
        yield sim


def test_finish_injects_the_kinds_not_reached_yet_without_their_gaps(sim):
    schedule = iter(
        [
            Fault(0.0, "503 burst", {"verb": "get", "count": 1}),
            Fault(SLOW, "503 burst", {"verb": "get", "count": 1}),  # a kind already injected
            Fault(SLOW, "cut LIST", {"count": 1}),
            Fault(SLOW, "kubesim restart", {"down_for": 0.0}),
            Fault(SLOW, "cut LIST", {"count": 1}),  # beyond the first round
        ]
    )
    injector = FaultInjector(sim, qcluster=None, feed=None, schedule=schedule)
    injector.start()
    deadline = time.monotonic() + 10
    while not injector.counts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dict(injector.counts) == {"503 burst": 1}

    began = time.monotonic()
    injector.finish(("503 burst", "cut LIST", "kubesim restart"))

    assert time.monotonic() - began < SLOW / 2
    assert dict(injector.counts) == {"503 burst": 1, "cut LIST": 1, "kubesim restart": 1}
    assert injector.hurried == 2
    assert [f.kind for f in injector.log] == ["503 burst", "cut LIST", "kubesim restart"]
    assert injector.errors == []


def test_stop_injects_nothing_more(sim):
    schedule = iter([Fault(SLOW, "cut LIST", {"count": 1})])
    injector = FaultInjector(sim, qcluster=None, feed=None, schedule=schedule)
    injector.start()
    injector.stop()
    assert dict(injector.counts) == {}
    assert injector.hurried == 0


def _blocked_getter(queue) -> None:
    queue.get()  # holds the queue's reader lock while it waits in the pipe


def test_a_worker_waiting_in_a_queue_is_not_killed_but_one_waiting_for_its_lock_is():
    import multiprocessing

    from bench.chaos.processes import _kill_unless_in_a_queue

    context = multiprocessing.get_context("fork")  # as django-q2's workers are made
    queue = context.Queue()
    holder = context.Process(target=_blocked_getter, args=(queue,))
    holder.start()
    time.sleep(0.3)  # the holder is in the pipe's read, its lock taken
    waiter = context.Process(target=_blocked_getter, args=(queue,))
    waiter.start()
    time.sleep(0.3)  # the waiter is on the lock's semaphore
    try:
        assert _kill_unless_in_a_queue(holder.pid) is False
        assert holder.is_alive()
        assert _kill_unless_in_a_queue(waiter.pid) is True
        waiter.join(5)
        assert waiter.exitcode == -9
        queue.put("done")  # the holder was let go on: it still takes what comes
        holder.join(5)
        assert holder.exitcode == 0
    finally:
        for process in (holder, waiter):
            if process.is_alive():
                process.kill()
