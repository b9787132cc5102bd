"""Replay of representative writes: objects and managedFields must match recorded outputs.

The golden file was captured from the implementation before the PATCH-path optimisations
(``KUBESIM_REGOLD=1`` rewrites it). Every step records the returned object (or the error
Status), the stored object, and checks that previously stored objects were never mutated.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubesim import api as api_mod
from kubesim.api import Api
from kubesim.errors import ApiError
from kubesim.resources import BY_KEY, DEPLOYMENTS, NAMESPACES
from kubesim.store import Store

GOLDEN = Path(__file__).parent / "data" / "managed_fields_replay.json"
NS = "replay"


def _deployment(name: str, image: str = "app:v1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                        }
                    ]
                },
            },
        },
    }


def _image_smp(image: str, n: int) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"bench/n": str(n)}},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def _applied(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def _apply_full(name: str, image: str, replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return _applied(name, **spec)


def _steps() -> list[tuple[str, Any]]:
    """(label, callable(api) -> object) pairs; run in order against one store."""
    D = DEPLOYMENTS
    cm = BY_KEY["configmaps"]
    s: list[tuple[str, Any]] = []

    def add(label: str, fn: Any) -> None:
        s.append((label, fn))

    add("create d1", lambda a: a.create(D, NS, _deployment("d1"), manager="kubectl-client"))
    add(
        "smp image",
        lambda a: a.patch(D, NS, "d1", "strategic", _image_smp("app:v2", 1), manager="rollouts"),
    )
    add(
        "smp image again (other manager)",
        lambda a: a.patch(D, NS, "d1", "strategic", _image_smp("app:v3", 2), manager="bench"),
    )
    add(
        "smp no-op",
        lambda a: a.patch(D, NS, "d1", "strategic", _image_smp("app:v3", 2), manager="bench"),
    )
    add(
        "smp add env",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "strategic",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "env": [
                                        {"name": "A", "value": "1"},
                                        {"name": "B", "value": "2"},
                                    ],
                                }
                            ]
                        }
                    }
                }
            },
            manager="env-setter",
        ),
    )
    add(
        "smp delete env elem",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "strategic",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "web", "env": [{"name": "A", "$patch": "delete"}]}
                            ]
                        }
                    }
                }
            },
            manager="rollouts",
        ),
    )
    add(
        "smp add sidecar",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "strategic",
            {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}},
            manager="sidecar",
        ),
    )
    add(
        "smp dry-run",
        lambda a: a.patch(
            D, NS, "d1", "strategic", _image_smp("app:dry", 9), manager="bench", dry_run=True
        ),
    )
    add(
        "smp stale rv",
        lambda a: a.patch(
            D, NS, "d1", "strategic", {"metadata": {"resourceVersion": "1"}}, manager="bench"
        ),
    )
    add(
        "smp no manager",
        lambda a: a.patch(D, NS, "d1", "strategic", {"spec": {"replicas": 3}}),
    )
    add(
        "merge patch labels+replicas",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "merge",
            {"metadata": {"labels": {"tier": "web"}}, "spec": {"replicas": 2}},
            manager="merger",
        ),
    )
    add(
        "merge patch remove label",
        lambda a: a.patch(
            D, NS, "d1", "merge", {"metadata": {"labels": {"tier": None}}}, manager="merger"
        ),
    )
    add(
        "json patch image",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "json",
            [
                {
                    "op": "replace",
                    "path": "/spec/template/spec/containers/0/image",
                    "value": "app:json",
                },
                {"op": "add", "path": "/metadata/annotations/x", "value": "y"},
            ],
            manager="jsoner",
        ),
    )
    add(
        "json patch remove sidecar",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "json",
            [{"op": "remove", "path": "/spec/template/spec/containers/1"}],
            manager="jsoner",
        ),
    )
    add("json patch bad", lambda a: a.patch(D, NS, "d1", "json", [{"op": "nope"}], manager="j"))
    add(
        "status patch",
        lambda a: a.patch(
            D,
            NS,
            "d1",
            "merge",
            {"status": {"replicas": 1, "readyReplicas": 1}},
            subresource="status",
            manager="ctrl",
        ),
    )
    add(
        "status via main resource ignored",
        lambda a: a.patch(D, NS, "d1", "merge", {"status": {"replicas": 7}}, manager="x"),
    )

    def _replace(a: Api) -> Any:
        cur = json.loads(json.dumps(a.get(D, NS, "d1")))
        cur["spec"]["template"]["spec"]["containers"][0]["image"] = "app:put"
        cur["metadata"].setdefault("annotations", {})["put"] = "1"
        cur["spec"]["template"]["spec"]["containers"][0].pop("env", None)
        return a.update(D, NS, "d1", cur, manager="replacer")

    add("update/replace", _replace)

    def _replace_stale(a: Api) -> Any:
        cur = json.loads(json.dumps(a.get(D, NS, "d1")))
        cur["metadata"]["resourceVersion"] = "5"
        return a.update(D, NS, "d1", cur, manager="replacer")

    add("update stale", _replace_stale)
    # Server-side apply, two managers.
    add(
        "apply create d2 by A",
        lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "a:1", 2), manager="A"),
    )
    add(
        "apply A again same",
        lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "a:1", 2), manager="A"),
    )
    add(
        "apply B conflict",
        lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "b:1", 3), manager="B"),
    )
    add(
        "apply B same values (shared)",
        lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "a:1"), manager="B"),
    )
    add(
        "apply B force",
        lambda a: a.patch(
            D, NS, "d2", "apply", _apply_full("d2", "b:2", 3), manager="B", force=True
        ),
    )
    add(
        "apply A drops replicas",
        lambda a: a.patch(
            D,
            NS,
            "d2",
            "apply",
            _applied(d := "d2", selector={"matchLabels": {"app": d}}),
            manager="A",
        ),
    )
    add(
        "apply A dry-run",
        lambda a: a.patch(
            D, NS, "d2", "apply", _apply_full("d2", "a:9"), manager="A", force=True, dry_run=True
        ),
    )
    add(
        "smp over applied",
        lambda a: a.patch(D, NS, "d2", "strategic", _image_smp("c:1", 3), manager="rollouts"),
    )
    add(
        "apply B after smp conflict",
        lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "b:3", 3), manager="B"),
    )
    add(
        "apply B env list",
        lambda a: a.patch(
            D,
            NS,
            "d2",
            "apply",
            _applied(
                "d2",
                template={
                    "spec": {"containers": [{"name": "web", "env": [{"name": "E", "value": "1"}]}]}
                },
            ),
            manager="B",
            force=True,
        ),
    )
    add("apply no manager", lambda a: a.patch(D, NS, "d2", "apply", _apply_full("d2", "a:1")))
    add(
        "apply wrong kind",
        lambda a: a.patch(D, NS, "d2", "apply", {"kind": "Pod", "apiVersion": "v1"}, manager="A"),
    )
    add("patch missing", lambda a: a.patch(D, NS, "nope", "strategic", {}, manager="A"))
    # ConfigMap (no generation, no status).
    add(
        "cm create",
        lambda a: a.create(cm, NS, {"metadata": {"name": "c"}, "data": {"a": "1"}}, manager="k"),
    )
    add("cm smp", lambda a: a.patch(cm, NS, "c", "strategic", {"data": {"b": "2"}}, manager="m"))
    add(
        "cm smp overwrite",
        lambda a: a.patch(cm, NS, "c", "strategic", {"data": {"a": "3"}}, manager="m"),
    )
    add(
        "cm apply",
        lambda a: a.patch(
            cm,
            NS,
            "c",
            "apply",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"a": "3", "z": "9"},
            },
            manager="ap",
        ),
    )
    add(
        "cm merge delete key",
        lambda a: a.patch(cm, NS, "c", "merge", {"data": {"z": None}}, manager="m"),
    )
    add(
        "cm smp empty map",
        lambda a: a.patch(cm, NS, "c", "strategic", {"metadata": {"annotations": {}}}, manager="e"),
    )
    return s


def _run() -> list[dict[str, Any]]:
    store = Store()
    api = Api(store)
    api.create(NAMESPACES, "", {"metadata": {"name": NS}}, internal=True)
    out: list[dict[str, Any]] = []
    snapshots: list[tuple[Any, str]] = []
    for label, fn in _steps():
        try:
            result: Any = fn(api)
            rec: dict[str, Any] = {"step": label, "result": json.loads(json.dumps(result))}
        except ApiError as e:
            rec = {"step": label, "error": e.status()}
        stored = {
            key: [json.loads(json.dumps(o)) for o in store.iter(key, NS)]
            for key in ("deployments.apps", "configmaps")
        }
        rec["stored"] = stored
        rec["rv"] = store.resource_version
        out.append(rec)
        # Stored objects are immutable: nothing stored earlier may have changed since.
        for obj, dumped in snapshots:
            assert json.dumps(obj, sort_keys=True) == dumped, f"stored object mutated at {label}"
        for key in ("deployments.apps", "configmaps"):
            for o in store.iter(key, NS):
                snapshots.append((o, json.dumps(o, sort_keys=True)))
        for o in store.iter("deployments.apps", NS):
            assert store.encode(o) == json.dumps(o, separators=(",", ":")).encode()
    return out


@pytest.fixture
def deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count()
    ids = itertools.count()
    monkeypatch.setattr(api_mod, "now_iso", lambda: f"2026-01-01T00:00:{next(clock) % 60:02d}Z")
    monkeypatch.setattr(api_mod.uuid, "uuid4", lambda: uuid.UUID(int=next(ids)))
    # The replay is about writes and managedFields; the golden file predates the namespace's
    # default ServiceAccount and kube-root-ca.crt ConfigMap (kubesim/bootstrap.py).
    monkeypatch.setattr(api_mod, "namespace_defaults", lambda api, ns: None)


def test_replay_matches_recorded_outputs(deterministic: None) -> None:
    got = _run()
    if os.environ.get("KUBESIM_REGOLD"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want, strict=True):
        assert g == w, g["step"]
