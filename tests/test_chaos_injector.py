"""The chaos fault injector's own contract: once the rollouts are over, ``finish`` injects the
first-round kinds the schedule had not reached yet, without their gaps, and nothing else.

A faster machine (or a faster kubesim) ends the rollouts sooner; without ``finish`` the last
kinds of the first round were never injected, and which ones depended on the machine.
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
