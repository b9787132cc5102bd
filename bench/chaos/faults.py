"""The fault injector: a thread that works through the seeded schedule until stopped.

Each fault is one of ``plan.FAULT_KINDS``; kubesim faults go through its fault rules
(``kubesim/hooks.py``), the rest are process-level (kubesim's HTTP server restarted with its
state kept, CouchDB frozen with SIGSTOP mid-sync, qcluster processes SIGKILLed).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.chaos.plan import Fault
from bench.chaos.processes import QCluster
from bench.chaos.signups import SignupFeed
from kubesim import KubeSim


@dataclass
class Injected:
    at: float  # seconds since the run started
    kind: str
    detail: str


@dataclass
class FaultInjector:
    """Injects ``schedule`` into the running system; ``counts`` says what was injected."""

    sim: KubeSim
    qcluster: QCluster
    feed: SignupFeed
    schedule: Iterator[Fault]
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    log: list[Injected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hurried: int = 0  # faults injected by finish(), after the last rollout ended
    _stop: threading.Event = field(default_factory=threading.Event)
    _hurry: threading.Event = field(default_factory=threading.Event)  # set by finish()
    _kinds_wanted: set[str] = field(default_factory=set)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-faults", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop injecting; wait for the fault in progress to finish (CouchDB thawed, the
        qcluster restarted)."""
        self._stop.set()
        self._hurry.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def finish(self, kinds: tuple[str, ...], timeout: float = 120) -> None:
        """The rollouts are over: go on through the schedule without its gaps, injecting only
        the kinds of ``kinds`` not injected yet, until each has been (or the schedule ends);
        then stop.

        Rollouts that finish sooner than the schedule's first round would otherwise leave a
        kind never injected, and which one depends on how fast the machine is.
        """
        self._kinds_wanted = set(kinds)
        self._hurry.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.stop()

    def _run(self) -> None:
        for fault in self.schedule:
            self._hurry.wait(fault.delay)
            if self._stop.is_set():
                return
            if self._hurry.is_set():
                missing = self._kinds_wanted - set(self.counts)
                if not missing:
                    return
                if fault.kind not in missing:
                    continue
            try:
                detail = self.inject(fault)
            except Exception as exc:  # the run goes on; the report lists it
                self.errors.append(f"{fault.kind}: {exc!r}\n{traceback.format_exc(limit=3)}")
                continue
            if not detail:
                continue  # nothing to do at this moment (no worker to kill yet)
            self.counts[fault.kind] += 1
            self.hurried += self._hurry.is_set()
            self.log.append(Injected(round(time.monotonic() - self.started, 2), fault.kind, detail))

    def inject(self, fault: Fault) -> str:
        """Inject one fault now; returns a one-line description."""
        p, faults = fault.params, self.sim.faults
        kind = fault.kind
        if kind == "429 retry-after":
            faults.add(
                "patch", "deployments", status=429, count=p["count"], retry_after=p["retry_after"]
            )
            return f"{p['count']} PATCHes answered 429, Retry-After {p['retry_after']}s"
        if kind == "500 after apply":
            faults.add("patch", "deployments", after_write=True, count=p["count"])
            return f"{p['count']} PATCHes applied, then answered 500"
        if kind == "503 burst":
            faults.add(p["verb"], "deployments", status=503, count=p["count"])
            return f"{p['count']} {p['verb'] or 'any'} requests answered 503"
        if kind == "latency":
            faults.add(p["verb"], "deployments", latency=p["latency"], count=p["count"])
            return f"{p['count']} {p['verb']}s delayed {p['latency']}s"
        if kind == "cut watches":
            return f"{faults.cut_watches()} watch streams cut"
        if kind == "cut LIST":
            faults.add("list", "deployments", drop=True, count=p["count"])
            return f"{p['count']} LISTs dropped without an answer"
        if kind == "kubesim restart":
            dropped = self.sim.restart(down_for=p["down_for"])
            return f"down {p['down_for']}s, {dropped} connections reset, state kept"
        if kind == "couchdb paused mid-sync":
            return self.feed.pause_mid_sync(p["docs"], p["stop_after"], p["stopped_for"])
        if kind == "SIGKILL worker":
            return self.qcluster.kill_worker(p["pick"])
        if kind == "SIGKILL qcluster":
            self.qcluster.restart(p["down_for"])
            return f"whole cluster killed, restarted after {p['down_for']}s"
        raise ValueError(f"unknown fault kind {kind!r}")
