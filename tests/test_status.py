"""Unit tests for cluster.status: kubectl `rollout status` semantics (no Django, no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cluster.status import DeploymentSnapshot, RolloutState, rollout_state, snapshot


def make_deployment(
    *,
    generation: int = 2,
    spec_replicas: int | None = 2,
    status: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **metadata_extra: Any,
) -> dict[str, Any]:
    """A Deployment as the API returns it; by default fully rolled out at generation 2."""
    dep: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "bobs-bakery",
            "namespace": "subscribie-sites",
            "generation": generation,
            "labels": {"subscribie": "site", "subscribie-site": "bobs-bakery"},
            "annotations": {
                "deployment.kubernetes.io/revision": "4",
                "kubernetes.io/change-cause": "alice: rollout 7 -> v2",
            },
            **metadata_extra,
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "busybox"},
                        {"name": "subscribie", "image": "subscribie/subscribie:v2"},
                    ]
                }
            }
        },
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    if spec_replicas is not None:
        dep["spec"]["replicas"] = spec_replicas
    if status is not None:
        dep["status"] = status
    if conditions is not None:
        dep["status"]["conditions"] = conditions
    return dep


def state(dep: dict[str, Any], **kwargs: Any) -> RolloutState:
    return rollout_state(dep, **kwargs)


def test_done() -> None:
    result = state(make_deployment())
    assert result == RolloutState("done", 'deployment "bobs-bakery" successfully rolled out')
    assert result.done and not result.failed


def test_generation_not_observed_yet() -> None:
    dep = make_deployment(generation=3)  # status still describes generation 2
    result = state(dep)
    assert result == RolloutState(
        "progressing", "Waiting for deployment spec update to be observed..."
    )
    assert not result.done and not result.failed


def test_expected_generation_guards_against_stale_status() -> None:
    # We PATCHed and got generation 3 back, but read an object (e.g. from a lagging cache)
    # whose metadata and status both still say 2: it must not count as done.
    dep = make_deployment(generation=2)
    assert state(dep, expected_generation=3).phase == "progressing"
    assert state(dep, expected_generation=3).message == (
        "Waiting for deployment spec update to be observed..."
    )
    assert state(dep, expected_generation=2).done
    assert state(dep, expected_generation=1).done  # a later generation also satisfies it


def test_progress_deadline_exceeded() -> None:
    conditions = [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "bobs-bakery-5d9c" has timed out progressing.',
        },
    ]
    status = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1}
    result = state(make_deployment(status=status, conditions=conditions))
    assert result.failed and not result.done
    assert result.message == (
        'deployment "bobs-bakery" exceeded its progress deadline: '
        'ReplicaSet "bobs-bakery-5d9c" has timed out progressing.'
    )


def test_progress_deadline_exceeded_without_message() -> None:
    conditions = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    result = state(make_deployment(conditions=conditions))
    assert result == RolloutState(
        "failed", 'deployment "bobs-bakery" exceeded its progress deadline'
    )


def test_deadline_on_unobserved_generation_is_not_failure() -> None:
    # kubectl only trusts conditions once the controller has seen the current spec: the
    # condition may belong to the previous rollout.
    conditions = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    assert state(make_deployment(generation=3, conditions=conditions)).phase == "progressing"
    assert (
        state(make_deployment(conditions=conditions), expected_generation=3).phase == "progressing"
    )


def managed_by_us(at: str) -> list[dict[str, Any]]:
    return [
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "time": "2026-12-03T10:00:09Z"},
        {"manager": "subscribie-admin", "operation": "Update", "time": at},
    ]  # fmt: skip


def revert_in_flight(*, timed_out_at: str, patched_at: str) -> dict[str, Any]:
    """What a real controller shows right after a revert to a ReplicaSet that still exists:
    the new generation observed, the old rollout's timeout still there, the stalled pod not
    yet gone."""
    conditions = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "lastUpdateTime": timed_out_at,
            "message": 'ReplicaSet "bobs-bakery-broken" has timed out progressing.',
        }
    ]
    status = {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
    dep = make_deployment(
        generation=3, status=status, conditions=conditions, managedFields=managed_by_us(patched_at)
    )
    return dep


def test_timeout_from_before_our_patch_is_not_our_failure() -> None:
    dep = revert_in_flight(timed_out_at="2026-12-03T10:00:05Z", patched_at="2026-12-03T10:00:07Z")
    result = state(dep, expected_generation=3)
    assert result.phase == "progressing"
    assert result.message.endswith("1 old replicas are pending termination...")
    # The same second counts as before: our own timeout comes >= progressDeadlineSeconds later.
    same = revert_in_flight(timed_out_at="2026-12-03T10:00:07Z", patched_at="2026-12-03T10:00:07Z")
    assert state(same, expected_generation=3).phase == "progressing"
    # Once the stalled pod is gone it reads as done, as the controller then says too.
    dep["status"]["replicas"] = 2
    assert state(dep, expected_generation=3).done


def test_timeout_after_our_patch_fails_and_without_a_patch_of_ours_kubectl_rules() -> None:
    late = revert_in_flight(timed_out_at="2026-12-03T10:01:08Z", patched_at="2026-12-03T10:00:07Z")
    assert state(late, expected_generation=3).failed
    # Not gating a patch of ours (status refresh, kubectl's view): any timeout is a failure.
    early = revert_in_flight(timed_out_at="2026-12-03T10:00:05Z", patched_at="2026-12-03T10:00:07Z")
    assert state(early).failed
    # No write of ours recorded, or no time on the condition: nothing to call stale.
    early["metadata"]["managedFields"] = managed_by_us("x")[:1]
    assert state(early, expected_generation=3).failed
    del early["status"]["conditions"][0]["lastUpdateTime"]
    early["metadata"]["managedFields"] = managed_by_us("2026-12-03T10:00:07Z")
    assert state(early, expected_generation=3).failed


def test_other_progressing_reasons_are_not_failure() -> None:
    for reason in ("NewReplicaSetAvailable", "ReplicaSetUpdated", "DeploymentPaused"):
        conditions = [{"type": "Progressing", "status": "True", "reason": reason}]
        assert state(make_deployment(conditions=conditions)).done


def test_new_replicas_not_all_updated() -> None:
    status = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}
    assert state(make_deployment(status=status)) == RolloutState(
        "progressing",
        'Waiting for deployment "bobs-bakery" rollout to finish: '
        "1 out of 2 new replicas have been updated...",
    )


def test_old_replicas_pending_termination() -> None:
    status = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}
    assert state(make_deployment(status=status)) == RolloutState(
        "progressing",
        'Waiting for deployment "bobs-bakery" rollout to finish: '
        "1 old replicas are pending termination...",
    )


def test_updated_replicas_not_available() -> None:
    status = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}
    assert state(make_deployment(status=status)) == RolloutState(
        "progressing",
        'Waiting for deployment "bobs-bakery" rollout to finish: '
        "1 of 2 updated replicas are available...",
    )


def test_branch_order_matches_kubectl() -> None:
    # Everything is wrong at once: kubectl reports the deadline first, then updated count.
    status = {"observedGeneration": 2, "replicas": 5, "updatedReplicas": 0, "availableReplicas": 0}
    deadline = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
    assert state(make_deployment(status=copy.deepcopy(status), conditions=deadline)).failed
    assert "0 out of 2 new replicas" in state(make_deployment(status=status)).message


def test_scaled_to_zero_is_done_once_observed() -> None:
    status = {"observedGeneration": 2}  # the API omits zero counts
    assert state(make_deployment(spec_replicas=0, status=status)).done
    assert state(make_deployment(generation=3, spec_replicas=0, status=status)).phase == (
        "progressing"
    )


def test_scaling_down_waits_for_old_replicas() -> None:
    status = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 0}
    result = state(make_deployment(spec_replicas=0, status=status))
    assert result.phase == "progressing"
    assert "1 old replicas are pending termination" in result.message


def test_missing_status_is_not_observed() -> None:
    dep = make_deployment()
    del dep["status"]
    assert state(dep).message == "Waiting for deployment spec update to be observed..."


def test_missing_status_and_generation_counts_as_zero() -> None:
    # generation 0 <= observedGeneration 0: observed; nothing running, spec.replicas unset.
    dep = {"metadata": {"name": "x"}}
    assert state(dep).done
    dep_with_replicas = {"metadata": {"name": "x"}, "spec": {"replicas": 1}}
    assert state(dep_with_replicas).message == (
        'Waiting for deployment "x" rollout to finish: 0 out of 1 new replicas have been updated...'
    )


def test_unset_spec_replicas_skips_that_check_like_kubectl() -> None:
    status = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    assert state(make_deployment(spec_replicas=None, status=status)).done


@pytest.mark.parametrize(
    "dep",
    [
        {},
        {"metadata": None, "spec": "x", "status": []},
        {"metadata": {"generation": "2"}, "status": {"observedGeneration": True}},
        {"status": {"conditions": "nope", "observedGeneration": 1}},
        {"status": {"conditions": [None, "x", {"type": "Progressing"}], "replicas": "3"}},
    ],
)
def test_malformed_input_never_raises(dep: dict[str, Any]) -> None:
    assert state(dep).phase in {"progressing", "done", "failed"}
    assert isinstance(snapshot(dep), DeploymentSnapshot)


def test_input_is_not_mutated() -> None:
    dep = make_deployment(conditions=[{"type": "Progressing", "reason": "ReplicaSetUpdated"}])
    before = copy.deepcopy(dep)
    snapshot(dep, expected_generation=2)
    assert dep == before


# --- snapshot ----------------------------------------------------------------------------------


def test_snapshot_fields() -> None:
    dep = make_deployment(
        status={
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 2,
            "readyReplicas": 1,
            "availableReplicas": 1,
        }
    )
    dep["spec"]["paused"] = True
    assert snapshot(dep) == DeploymentSnapshot(
        name="bobs-bakery",
        slug="bobs-bakery",
        image="subscribie/subscribie:v2",
        generation=2,
        observed_generation=2,
        revision=4,
        desired_replicas=2,
        ready_replicas=1,
        updated_replicas=2,
        available_replicas=1,
        paused=True,
        change_cause="alice: rollout 7 -> v2",
        state=RolloutState(
            "progressing",
            'Waiting for deployment "bobs-bakery" rollout to finish: '
            "1 old replicas are pending termination...",
        ),
    )


def test_snapshot_passes_expected_generation() -> None:
    assert snapshot(make_deployment()).state.done
    assert not snapshot(make_deployment(), expected_generation=5).state.done


def test_snapshot_defaults_for_absent_fields() -> None:
    snap = snapshot({"metadata": {"name": "legacy-site"}})
    assert snap.name == "legacy-site"
    assert snap.slug == "legacy-site"  # no subscribie-site label: fall back to the name
    assert snap.image is None
    assert snap.revision is None
    assert snap.change_cause is None
    assert snap.desired_replicas is None
    assert snap.paused is False
    assert (snap.generation, snap.observed_generation) == (0, 0)
    assert (snap.ready_replicas, snap.updated_replicas, snap.available_replicas) == (0, 0, 0)


def test_snapshot_slug_from_label_and_image_only_from_subscribie_container() -> None:
    dep = make_deployment()
    dep["metadata"]["name"] = "renamed"
    dep["spec"]["template"]["spec"]["containers"] = [{"name": "other", "image": "x"}]
    snap = snapshot(dep)
    assert snap.slug == "bobs-bakery"
    assert snap.image is None


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5", "٣", "9" * 5000, None, 4])
def test_snapshot_revision_must_be_a_decimal_string(raw: Any) -> None:
    dep = make_deployment()
    dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = raw
    assert snapshot(dep).revision is None


def test_snapshot_is_frozen() -> None:
    snap = snapshot(make_deployment())
    with pytest.raises(AttributeError):
        snap.image = "evil"  # type: ignore[misc]
