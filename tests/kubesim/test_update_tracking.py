"""``track_update``'s diff walk finds what a full walk of both objects finds.

An Update's managedFields need ``leaf_paths(new) - leaf_paths(old)`` and the reverse. The
walk derives both from the parts where the objects differ, without walking all of ``old``
(the largest cost of a PATCH in kubesim). These tests hold it to the definition on random
pairs of objects: nested maps, associative lists (with missing and duplicate merge keys),
empty maps, scalars where maps were, and tracked and untracked metadata.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from kubesim.apply import _MISSING, _paths_and_changes, get_path, leaf_paths, track_update

KEYS = ["a", "b", "image", "name", "labels", "env", "containers", "ports", "value"]
META_KEYS = ["name", "labels", "annotations", "resourceVersion", "uid", "ownerReferences"]


def _scalar(rnd: random.Random) -> Any:
    return rnd.choice([1, 2, "v", "w", None, True, [1, 2], [], {}])


def _value(rnd: random.Random, depth: int) -> Any:
    if depth <= 0 or rnd.random() < 0.25:
        return _scalar(rnd)
    if rnd.random() < 0.55:
        return {rnd.choice(KEYS): _value(rnd, depth - 1) for _ in range(rnd.randint(0, 4))}
    return [  # often an associative list keyed by name (some keys not strings, some missing)
        {
            **(
                {"name": rnd.choice(["c1", "c2", "c3", "c3", 80, 1, True])}
                if rnd.random() < 0.8
                else {}
            ),
            **{rnd.choice(KEYS): _value(rnd, depth - 2) for _ in range(rnd.randint(0, 2))},
        }
        for _ in range(rnd.randint(0, 3))
    ]


def _object(rnd: random.Random) -> dict[str, Any]:
    containers = [{"name": "c1", "image": _scalar(rnd), "env": _value(rnd, 2)}]
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "X",
        "metadata": {k: _value(rnd, 2) for k in rnd.sample(META_KEYS, rnd.randint(0, 5))},
        "spec": {
            "template": {
                "spec": {"containers": _value(rnd, 3) if rnd.random() < 0.3 else containers}
            },
            "replicas": _scalar(rnd),
        },
    }
    if rnd.random() < 0.5:
        obj["status"] = _value(rnd, 3)
    if rnd.random() < 0.3:
        obj[rnd.choice(["data", "extra"])] = _value(rnd, 3)
    return obj


def _edited(rnd: random.Random, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with a few random replacements, deletions and additions."""
    new = copy.deepcopy(obj)
    for _ in range(rnd.randint(0, 3)):
        cur: Any = new
        for _ in range(rnd.randint(1, 5)):
            if isinstance(cur, dict) and cur:
                key = rnd.choice(list(cur))
                if rnd.random() < 0.3:
                    cur[key] = _value(rnd, 3) if rnd.random() < 0.7 else _scalar(rnd)
                    break
                if rnd.random() < 0.1:
                    del cur[key]
                    break
                cur = cur[key]
            elif isinstance(cur, list) and cur:
                i = rnd.randrange(len(cur))
                if rnd.random() < 0.3:
                    cur[i] = _value(rnd, 2)
                    break
                cur = cur[i]
            else:
                break
        if isinstance(cur, dict) and rnd.random() < 0.3:
            cur[rnd.choice(KEYS)] = _value(rnd, 2)
    return new


def _by_definition(old: dict[str, Any], new: dict[str, Any], include_status: bool) -> tuple:
    new_paths = leaf_paths(new, include_status)
    old_paths = leaf_paths(old, include_status)
    differs = {p for p in new_paths if p[-1] != "." and get_path(old, p) != get_path(new, p)} | (
        new_paths - old_paths
    )
    return new_paths, differs, old_paths - new_paths


def test_the_diff_walk_matches_full_walks_of_both_objects() -> None:
    rnd = random.Random(12)
    for _ in range(4000):
        old = _object(rnd)
        new = _edited(rnd, old) if rnd.random() < 0.8 else _object(rnd)
        for include_status in (False, True):
            assert _paths_and_changes(old, new, include_status, []) == _by_definition(
                old, new, include_status
            ), (old, new, include_status)


def test_an_image_patch_moves_only_the_image_and_change_cause_to_the_patcher() -> None:
    old = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": "d"}, "resourceVersion": "7"},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "i:1", "ports": []}]}},
        },
    }
    track_update(None, old, "applier", "apps/v1", "t0")
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {"kubernetes.io/change-cause": "upgrade"}
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "i:2"
    track_update(old, new, "patcher", "apps/v1", "t1")
    owners = {e["manager"]: e["fieldsV1"] for e in new["metadata"]["managedFields"]}
    container = 'k:{"name":"c"}'
    patcher = owners["patcher"]
    assert patcher["f:metadata"] == {"f:annotations": {"f:kubernetes.io/change-cause": {}}}
    assert patcher["f:spec"]["f:template"]["f:spec"]["f:containers"][container] == {"f:image": {}}
    applier_container = owners["applier"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert "f:image" not in applier_container[container]
    assert "f:ports" in applier_container[container]
    assert get_path(new, ("f:spec", "f:paused")) is _MISSING
