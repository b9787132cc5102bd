"""cluster/wire.py decodes only what the gate reads, and the gate reads the same from it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cluster.status import snapshot
from cluster.wire import decode_deployment, decode_deployment_list, decode_event_object
from tests.fixtures.sites import wait_until
from tests.test_status import make_deployment, revert_in_flight

DEPLOYMENTS = [
    make_deployment(),
    make_deployment(generation=3),
    make_deployment(spec_replicas=None, paused=True),
    make_deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded",
                                 "message": 'ReplicaSet "x" has timed out progressing.'}]),
    revert_in_flight(timed_out_at="2026-12-03T10:00:05Z", patched_at="2026-12-03T10:00:07Z"),
    revert_in_flight(timed_out_at="2026-12-03T10:00:09Z", patched_at="2026-12-03T10:00:07Z"),
    # Shapes msgspec cannot map fall back to json.loads; odd scalars pass through as sent.
    {},
    {"metadata": None, "spec": "x", "status": []},
    {"metadata": {"generation": "2"}, "status": {"observedGeneration": True}},
    {"status": {"conditions": "nope", "observedGeneration": 1}},
    {"status": {"conditions": [None, "x", {"type": "Progressing"}], "replicas": "3"}},
    {"metadata": {"name": "x", "labels": ["not", "a", "map"], "managedFields": {"a": 1}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "subscribie", "image": 7}]}}}},
]  # fmt: skip


@pytest.mark.parametrize("dep", DEPLOYMENTS)
@pytest.mark.parametrize("expected", [None, 1, 2, 3])
def test_every_decoder_gives_the_snapshot_the_whole_json_gives(
    dep: dict[str, Any], expected: int | None
) -> None:
    data = json.dumps(dep).encode()
    whole = snapshot(json.loads(data), expected_generation=expected)
    assert snapshot(decode_deployment(data), expected_generation=expected) == whole
    event = json.dumps({"type": "MODIFIED", "object": dep}).encode()
    assert snapshot(decode_event_object(event), expected_generation=expected) == whole
    page = json.dumps({"metadata": {"resourceVersion": "9", "continue": "c"}, "items": [dep]})
    items, metadata = decode_deployment_list(page.encode())
    assert metadata == {"resourceVersion": "9", "continue": "c"}
    assert [snapshot(i, expected_generation=expected) for i in items] == [whole]


def test_a_real_deployment_decodes_without_its_field_sets(live_sites, cluster) -> None:
    """What kubesim serves (managedFields with fieldsV1 and all): the same snapshot, none of
    the field sets, and the managers' write times kept for the timed-out-condition check."""
    (site,) = live_sites(1)
    patched = cluster.set_image(site.slug, "subscribie/subscribie:v2", change_cause="test")
    # Rolled out first, so the controller writes nothing between the reads compared below.
    expected = {site.slug: patched.generation}
    wait_until(
        lambda: (
            cluster.list_sites([site.slug], expected_generations=expected)[site.slug].state.done
        ),
        timeout=30,
    )
    whole = cluster.read_deployment(site.slug)
    data = json.dumps(whole).encode()
    assert "fieldsV1" in data.decode()

    decoded = decode_deployment(data)
    assert snapshot(decoded) == snapshot(whole)
    assert "fieldsV1" not in json.dumps(decoded)
    assert [(e["manager"], e["time"]) for e in decoded["metadata"]["managedFields"]] == [
        (e["manager"], e["time"]) for e in whole["metadata"]["managedFields"]
    ]
    assert len(json.dumps(decoded)) < len(data) / 2
    # The gateway's own LIST path decodes as the whole JSON reads (once nothing moves).
    wait_until(
        lambda: (
            cluster.list_sites([site.slug])[site.slug]
            == snapshot(cluster.read_deployment(site.slug))
        ),
        timeout=10,
    )
