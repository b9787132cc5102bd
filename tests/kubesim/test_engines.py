"""Unit tests of the pure engines: selectors, patches, server-side apply, rollout arithmetic."""

from __future__ import annotations

import pytest

from kubesim.apply import server_side_apply, track_update
from kubesim.controllers import fenceposts, template_hash
from kubesim.errors import ApiError
from kubesim.jsonpatch import json_patch, merge_patch
from kubesim.selectors import label_matcher, parse_field_selector, parse_label_selector
from kubesim.strategic import strategic_merge


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("tier in (a, b),app", {"tier": "b", "app": "x"}, True),
        ("tier in (a,b)", {"tier": "c"}, False),
        ("tier notin (a,b)", {"tier": "c"}, True),
        ("tier notin (a,b)", {}, True),
        ("!canary", {"app": "x"}, True),
        ("!canary", {"canary": "1"}, False),
        (
            "subscribie=site,subscribie-site in (x,y)",
            {"subscribie": "site", "subscribie-site": "y"},
            True,
        ),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    match = label_matcher(parse_label_selector(selector))
    assert match is not None
    assert match(labels) is expected


def test_malformed_label_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector("app in (a,b")
    assert err.value.code == 400


def test_field_selector() -> None:
    match = parse_field_selector("metadata.name=web,metadata.namespace!=kube-system")
    assert match is not None
    assert match({"metadata": {"name": "web", "namespace": "default"}})
    assert not match({"metadata": {"name": "web", "namespace": "kube-system"}})
    assert not match({"metadata": {"name": "api", "namespace": "default"}})


def _pod(*containers: dict) -> dict:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}}}


def test_strategic_merge_merges_containers_by_name() -> None:
    orig = _pod(
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:1"},
    )
    patch = _pod({"name": "b", "image": "b:2"})
    out = strategic_merge(orig, patch)
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:2"},
    ]
    assert orig["spec"]["template"]["spec"]["containers"][1]["image"] == "b:1", (
        "input must not be mutated"
    )


def test_strategic_merge_directives() -> None:
    orig = _pod({"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"})
    deleted = strategic_merge(orig, _pod({"name": "a", "$patch": "delete"}))
    assert [c["name"] for c in deleted["spec"]["template"]["spec"]["containers"]] == ["b"]
    reordered = strategic_merge(
        orig,
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                        "containers": [{"name": "a", "image": "a:2"}],
                    }
                }
            }
        },
    )
    assert [
        (c["name"], c["image"]) for c in reordered["spec"]["template"]["spec"]["containers"]
    ] == [("b", "b:1"), ("a", "a:2")]
    replaced = strategic_merge(orig, _pod({"$patch": "replace"}, {"name": "z", "image": "z:1"}))
    assert replaced["spec"]["template"]["spec"]["containers"] == [{"name": "z", "image": "z:1"}]
    strategy = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    recreated = strategic_merge(
        strategy,
        {
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}
            }
        },
    )
    assert recreated["spec"]["strategy"] == {"type": "Recreate"}
    nulled = strategic_merge(
        {"metadata": {"labels": {"a": "1", "b": "2"}}}, {"metadata": {"labels": {"a": None}}}
    )
    assert nulled == {"metadata": {"labels": {"b": "2"}}}


def test_strategic_merge_container_ports_by_container_port_and_volume_mounts_by_path() -> None:
    orig = _pod(
        {
            "name": "a",
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/d", "name": "v1"}],
        }
    )
    out = strategic_merge(
        orig,
        _pod(
            {
                "name": "a",
                "ports": [{"containerPort": 443}],
                "volumeMounts": [{"mountPath": "/d", "name": "v2"}],
            }
        ),
    )
    c = out["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]
    assert c["volumeMounts"] == [{"mountPath": "/d", "name": "v2"}]


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    orig = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(orig, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }


def test_json_patch_operations_and_failed_test_op() -> None:
    doc = {"spec": {"replicas": 1, "list": [1, 2]}}
    out = json_patch(
        doc,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/moved"},
            {"op": "test", "path": "/moved", "value": 3},
        ],
    )
    assert out == {"spec": {"replicas": 3, "list": [2, 3]}, "moved": 3}
    assert doc == {"spec": {"replicas": 1, "list": [1, 2]}}
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert err.value.code == 422


def _deploy(image: str, replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def test_server_side_apply_conflicts_with_another_manager_unless_forced() -> None:
    first = server_side_apply(None, _deploy("a:1"), "alice", False, "apps/v1", "t")
    assert [e["manager"] for e in first["metadata"]["managedFields"]] == ["alice"]
    # Same values from bob: shared ownership, no conflict.
    shared = server_side_apply(first, _deploy("a:1"), "bob", False, "apps/v1", "t")
    assert {e["manager"] for e in shared["metadata"]["managedFields"]} == {"alice", "bob"}
    with pytest.raises(ApiError) as err:
        server_side_apply(first, _deploy("a:2"), "bob", False, "apps/v1", "t")
    assert err.value.code == 409
    assert 'conflict with "alice"' in err.value.message
    assert (
        err.value.details["causes"][0]["field"]
        == '.spec.template.spec.containers[name="web"].image'
    )
    forced = server_side_apply(first, _deploy("a:2"), "bob", True, "apps/v1", "t")
    assert forced["spec"]["template"]["spec"]["containers"][0]["image"] == "a:2"
    alice = next(e for e in forced["metadata"]["managedFields"] if e["manager"] == "alice")
    assert "f:image" not in str(alice["fieldsV1"])


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = _deploy("a:1")
    first["metadata"]["labels"] = {"keep": "1", "drop": "1"}
    applied = server_side_apply(None, first, "alice", False, "apps/v1", "t")
    second = _deploy("a:1")
    second["metadata"]["labels"] = {"keep": "1"}
    out = server_side_apply(applied, second, "alice", False, "apps/v1", "t")
    assert out["metadata"]["labels"] == {"keep": "1"}


def test_update_takes_ownership_from_apply_manager() -> None:
    applied = server_side_apply(None, _deploy("a:1"), "alice", False, "apps/v1", "t")
    updated = server_side_apply(None, _deploy("a:1"), "alice", False, "apps/v1", "t")
    updated["spec"]["template"]["spec"]["containers"][0]["image"] = "a:9"
    track_update(applied, updated, "kubectl-set", "apps/v1", "t")
    with pytest.raises(ApiError):
        server_side_apply(updated, _deploy("a:1"), "alice", False, "apps/v1", "t")


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (1, 1, 0, (1, 0)),
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable rounds down
        (3, "10%", "10%", (1, 0)),
        (1, 0, 0, (0, 1)),  # both zero means one unavailable
        (4, "50%", 1, (2, 1)),
    ],
)
def test_rolling_update_fenceposts(
    replicas: int, surge: object, unavailable: object, expected: tuple[int, int]
) -> None:
    d = {
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
        }
    }
    assert fenceposts(d) == expected


def test_template_hash_is_stable_and_template_sensitive() -> None:
    t1 = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]},
    }
    t2 = {
        "metadata": {"labels": {"a": "1", "pod-template-hash": "zzz"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]},
    }
    t3 = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "x:2"}]},
    }
    assert template_hash(t1) == template_hash(t2)
    assert template_hash(t1) != template_hash(t3)
    assert set(template_hash(t1)) <= set("bcdfghjklmnpqrstvwxz2456789")
