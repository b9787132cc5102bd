"""The controllers' fast paths keep their behaviour: hashing, immutability, status writes.

These drive the controllers in-process (no HTTP server, no background thread): each test calls
``Controllers.process()`` until nothing is due, so every step is deterministic.
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pytest

from kubesim import KubeSim
from kubesim.controllers import Controllers, template_hash
from kubesim.resources import DEPLOYMENTS, NAMESPACES, PODS
from kubesim.store import Obj

NS = "t"


def _template_hash_reference(template: dict[str, Any], collision_count: int = 0) -> str:
    t = json.loads(json.dumps(template))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop("pod-template-hash", None)
    data = json.dumps(t, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:  # ComputeHash: the count as 8 little-endian bytes
        data += collision_count.to_bytes(8, "little")
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[b % len(alphabet)] for b in str(zlib.crc32(data)).encode())


def test_template_hash_ignores_the_hash_label_and_never_edits_its_input() -> None:
    template = {
        "metadata": {"labels": {"app": "a", "pod-template-hash": "zzz"}},
        "spec": {"containers": [{"name": "c", "image": "img:1"}]},
    }
    before = json.dumps(template)
    assert template_hash(template) == _template_hash_reference(template)
    assert template_hash(template, 3) == _template_hash_reference(template, 3)
    assert json.dumps(template) == before
    without = {"metadata": {"labels": {"app": "a"}}, "spec": template["spec"]}
    assert template_hash(without) == template_hash(template)


def _deployment(name: str, replicas: int = 1, image: str = "img:1", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": labels, "annotations": {"note": "x"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"t": "1"}},
                "spec": {
                    "containers": [{"name": "c", "image": image, "ports": [{"containerPort": 80}]}]
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


def _image(image: str) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}


def _drain(sim: KubeSim) -> None:
    c = sim.controllers
    for _ in range(200):
        c.process()
        with sim.store.lock:
            due = bool(c._timers) and c._timers[0][0] <= time.time()
            if not (c._dirty_d or c._dirty_rs or due):
                return
    raise AssertionError("controllers did not settle")


@pytest.fixture
def sim() -> KubeSim:
    s = KubeSim(ready_after=0, fail_images="bad")  # not started: tests drive process()
    s.api.create(NAMESPACES, "", {"metadata": {"name": NS}})
    return s


def _exercise(sim: KubeSim) -> None:
    """Rolling updates, a return to an old template, Recreate, pause, scaling, history GC."""
    api = sim.api
    api.create(
        DEPLOYMENTS,
        NS,
        _deployment(
            "roll",
            3,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
        ),
    )
    api.create(DEPLOYMENTS, NS, _deployment("pct", 4))
    api.create(DEPLOYMENTS, NS, _deployment("re", 2, strategy={"type": "Recreate"}))
    api.create(DEPLOYMENTS, NS, _deployment("gc", 1, revisionHistoryLimit=1))
    _drain(sim)
    for image in ("img:2", "img:3", "img:2"):
        for name in ("roll", "pct", "re", "gc"):
            api.patch(DEPLOYMENTS, NS, name, "strategic", _image(image))
        _drain(sim)
    api.patch(DEPLOYMENTS, NS, "pct", "strategic", {"spec": {"paused": True}})
    api.patch(DEPLOYMENTS, NS, "pct", "strategic", _image("img:4"))
    api.patch(DEPLOYMENTS, NS, "pct", "strategic", {"spec": {"replicas": 6}})
    _drain(sim)
    api.patch(DEPLOYMENTS, NS, "pct", "strategic", {"spec": {"paused": False}})
    api.patch(DEPLOYMENTS, NS, "roll", "strategic", {"spec": {"replicas": 0}})
    api.patch(DEPLOYMENTS, NS, "gc", "strategic", _image("bad:1"))
    _drain(sim)
    api.patch(DEPLOYMENTS, NS, "roll", "strategic", {"spec": {"replicas": 2}})
    for pod in list(sim.store.iter(PODS.key, NS))[:3]:
        api.delete(PODS, NS, pod["metadata"]["name"])
    _drain(sim)


def test_no_stored_object_is_ever_edited_in_place(sim: KubeSim) -> None:
    """The controllers share unchanged parts between versions; no version may change later."""
    seen: list[tuple[Obj, str]] = []

    def record(type_key: str, etype: str, obj: Obj, old: Obj | None) -> None:
        seen.append((obj, json.dumps(obj, sort_keys=True)))
        if old is not None:
            seen.append((old, json.dumps(old, sort_keys=True)))

    sim.store.listeners.append(record)
    _exercise(sim)
    assert len(seen) > 200
    changed = [o["metadata"]["name"] for o, text in seen if json.dumps(o, sort_keys=True) != text]
    assert changed == []


def test_status_writes_store_what_api_update_would(
    sim: KubeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_put_status`` stores exactly the object ``Api.update(internal=True)`` would."""
    checked = 0
    put_status = Controllers._put_status

    def checking(self: Controllers, rt: Any, old: Obj, new: Obj) -> Obj:
        nonlocal checked
        meta = old["metadata"]
        expected = sim.api.update(
            rt,
            meta.get("namespace", ""),
            meta["name"],
            json.loads(json.dumps(new)),
            internal=True,
            dry_run=True,
        )
        stored = put_status(self, rt, old, new)
        strip = lambda o: {  # noqa: E731
            **o,
            "metadata": {k: v for k, v in o["metadata"].items() if k != "resourceVersion"},
        }

        assert json.dumps(strip(stored), sort_keys=True) == json.dumps(
            strip(expected), sort_keys=True
        )
        assert int(stored["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
        checked += 1
        return stored

    monkeypatch.setattr(Controllers, "_put_status", checking)
    _exercise(sim)
    assert checked > 50


def test_many_rollouts_at_once_keep_their_availability_guarantees(sim: KubeSim) -> None:
    api = sim.api
    # (replicas, maxSurge, maxUnavailable, lowest availableReplicas allowed while rolling)
    shapes = [
        (1, 1, 0, 1),
        (2, 1, 0, 2),
        (3, "25%", "25%", 3),  # 25% of 3 rounds down to 0 unavailable
        (4, 0, 1, 3),
        (5, "50%", "20%", 4),
    ]
    for i in range(40):
        replicas, surge, unavailable, _ = shapes[i % len(shapes)]
        strategy = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
        }
        api.create(DEPLOYMENTS, NS, _deployment(f"d{i}", replicas, strategy=strategy))
    _drain(sim)
    sim.reset_availability()
    for i in range(40):
        api.patch(DEPLOYMENTS, NS, f"d{i}", "strategic", _image("img:2"))
    _drain(sim)
    availability = sim.availability(NS)
    below = {
        f"d{i}": availability[f"{NS}/d{i}"]
        for i in range(40)
        if availability[f"{NS}/d{i}"] < shapes[i % len(shapes)][3]
    }
    assert below == {}
    for i in range(40):
        d = sim.store.get(DEPLOYMENTS.key, NS, f"d{i}")
        assert d is not None
        st, replicas = d["status"], d["spec"]["replicas"]
        assert st["observedGeneration"] == d["metadata"]["generation"] == 2
        assert (st.get("updatedReplicas"), st.get("replicas"), st.get("availableReplicas")) == (
            replicas,
            replicas,
            replicas,
        )


def test_template_hash_does_not_depend_on_key_order() -> None:
    a = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": []}}
    b = {"spec": {"containers": []}, "metadata": {"labels": {"b": "2", "a": "1"}}}
    assert template_hash(a) == template_hash(b)
    assert 8 <= len(template_hash(a)) <= 10
