"""Read a Deployment (API JSON as a dict) the way ``kubectl rollout status`` does.

Pure module: plain data in, plain data out. No ``kubernetes`` import, no Django, no clock.

The decision order mirrors ``DeploymentStatusViewer.Status`` in
kubectl/pkg/polymorphichelpers/rollout_status.go, so "done" here means exactly what an operator
running ``kubectl rollout status deployment/<slug>`` would see, with one addition:
``expected_generation`` (the ``metadata.generation`` our own PATCH returned) keeps a status
written before our patch from ever being read as done.

Invariants
----------
* ``rollout_state`` never raises on a dict: missing or mistyped fields count as 0 (or, for
  ``spec.replicas``, as "not set", as kubectl treats a nil pointer).
* A "done" state implies ``observedGeneration >= generation`` (and ``>= expected_generation``),
  ``updatedReplicas >= spec.replicas``, ``replicas <= updatedReplicas`` and
  ``availableReplicas >= updatedReplicas``.
* "failed" is only ever ``ProgressDeadlineExceeded`` on an observed generation; while we wait
  for our own patch (``expected_generation``), only one written after that patch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "CONTAINER_NAME",
    "PROGRESS_DEADLINE_EXCEEDED",
    "REVISION_ANNOTATION",
    "SITE_NAME_LABEL",
    "DeploymentSnapshot",
    "RolloutPhase",
    "RolloutState",
    "rollout_state",
    "snapshot",
]

# Duplicated from manifests.py rather than imported, so this module depends on nothing but the
# Kubernetes API's own vocabulary; tests pin the two copies together.
CONTAINER_NAME = "subscribie"
SITE_NAME_LABEL = "subscribie-site"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
FIELD_MANAGER = "subscribie-admin"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# deploymentutil.TimedOutReason in Kubernetes.
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"

RolloutPhase = Literal["progressing", "done", "failed"]


@dataclass(frozen=True)
class RolloutState:
    """One reading of a rollout: a phase and kubectl's wording for it (without the newline)."""

    phase: RolloutPhase
    message: str

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def failed(self) -> bool:
        return self.phase == "failed"


@dataclass(frozen=True)
class DeploymentSnapshot:
    """The fields of a site's Deployment the admin shows and decides on, plus its state.

    ``desired_replicas`` is None only if ``spec.replicas`` is absent (the API server always
    defaults it, so only hand-built dicts lack it). ``image`` is None if there is no container
    named ``subscribie``. ``revision`` is None if the annotation is absent or not an integer.
    """

    name: str
    slug: str
    image: str | None
    generation: int
    observed_generation: int
    revision: int | None
    desired_replicas: int | None
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    paused: bool
    change_cause: str | None
    state: RolloutState


def rollout_state(
    deployment: Mapping[str, Any], *, expected_generation: int | None = None
) -> RolloutState:
    """Classify a Deployment's rollout as progressing, done or failed (kubectl semantics)."""
    metadata = _mapping(deployment.get("metadata"))
    spec = _mapping(deployment.get("spec"))
    status = _mapping(deployment.get("status"))
    name = _go_quote(_str(metadata.get("name")))

    generation = _int(metadata.get("generation"))
    observed = _int(status.get("observedGeneration"))
    observed_ours = expected_generation is None or observed >= expected_generation
    if not (generation <= observed and observed_ours):
        return RolloutState("progressing", "Waiting for deployment spec update to be observed...")

    progressing = _condition(status, "Progressing")
    if (
        progressing is not None
        and progressing.get("reason") == PROGRESS_DEADLINE_EXCEEDED
        and not (expected_generation is not None and _timed_out_before_our_patch(deployment))
    ):
        message = f"deployment {name} exceeded its progress deadline"
        detail = _str(progressing.get("message"))
        # kubectl stops at the sentence above; the controller's message says which ReplicaSet
        # stalled, which is what staff need next.
        return RolloutState("failed", f"{message}: {detail}" if detail else message)

    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    desired = _optional_int(spec.get("replicas"))
    waiting = f"Waiting for deployment {name} rollout to finish: "
    if desired is not None and updated < desired:
        return RolloutState(
            "progressing",
            f"{waiting}{updated} out of {desired} new replicas have been updated...",
        )
    if replicas > updated:
        return RolloutState(
            "progressing", f"{waiting}{replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return RolloutState(
            "progressing", f"{waiting}{available} of {updated} updated replicas are available..."
        )
    return RolloutState("done", f"deployment {name} successfully rolled out")


def snapshot(
    deployment: Mapping[str, Any], *, expected_generation: int | None = None
) -> DeploymentSnapshot:
    """Summarise a Deployment dict (as the API returns it) into a ``DeploymentSnapshot``."""
    metadata = _mapping(deployment.get("metadata"))
    spec = _mapping(deployment.get("spec"))
    status = _mapping(deployment.get("status"))
    labels = _mapping(metadata.get("labels"))
    annotations = _mapping(metadata.get("annotations"))
    name = _str(metadata.get("name"))

    slug_label = labels.get(SITE_NAME_LABEL)
    change_cause = annotations.get(CHANGE_CAUSE_ANNOTATION)
    return DeploymentSnapshot(
        name=name,
        slug=slug_label if isinstance(slug_label, str) and slug_label else name,
        image=_container_image(spec),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        revision=_revision(annotations.get(REVISION_ANNOTATION)),
        desired_replicas=_optional_int(spec.get("replicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        updated_replicas=_int(status.get("updatedReplicas")),
        available_replicas=_int(status.get("availableReplicas")),
        paused=spec.get("paused") is True,
        change_cause=change_cause if isinstance(change_cause, str) else None,
        state=rollout_state(deployment, expected_generation=expected_generation),
    )


def _timed_out_before_our_patch(deployment: Mapping[str, Any]) -> bool:
    """Whether the ProgressDeadlineExceeded condition predates our latest write.

    A real deployment controller keeps a timed-out condition when the template goes back to
    one whose ReplicaSet still exists (a revert or rollback): it only replaces it once that
    rollout completes, and meanwhile marks the new generation observed. Read as kubectl does,
    the revert would "fail" at once. A timeout of our own patch can only be written at least
    ``progressDeadlineSeconds`` (>= 1) after it, so a condition last updated no later than our
    field manager's last write (both server clock, whole seconds) is the old rollout's.
    """
    condition = _condition(_mapping(deployment.get("status")), "Progressing") or {}
    timed_out_at = _timestamp(condition.get("lastUpdateTime"))
    ours = [
        _timestamp(entry.get("time"))
        for entry in _mapping(deployment.get("metadata")).get("managedFields") or []
        if _is_mapping(entry)
        and entry.get("manager") == FIELD_MANAGER
        and not entry.get("subresource")
    ]
    patched_at = max((t for t in ours if t is not None), default=None)
    return timed_out_at is not None and patched_at is not None and timed_out_at <= patched_at


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- tolerant readers: the API omits zero-valued status fields, so absence means 0 ------------


# Each reader tries the exact type the JSON decoders give first: ``isinstance`` against the
# ``Mapping`` ABC costs ten times a ``type`` test, and a snapshot makes about twenty such tests
# (three snapshots per site in a rollout).


def _is_mapping(value: object) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if _is_mapping(value) else {}


def _int(value: object) -> int:
    if type(value) is int:
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _optional_int(value: object) -> int | None:
    if type(value) is int:
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _condition(status: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    for condition in conditions:
        if _is_mapping(condition) and condition.get("type") == condition_type:
            return condition
    return None


def _container_image(spec: Mapping[str, Any]) -> str | None:
    pod_spec = _mapping(_mapping(spec.get("template")).get("spec"))
    containers = pod_spec.get("containers")
    if not isinstance(containers, list):
        return None
    for container in containers:
        if _is_mapping(container) and container.get("name") == CONTAINER_NAME:
            image = container.get("image")
            return image if isinstance(image, str) else None
    return None


def _revision(value: object) -> int | None:
    # The controller writes the revision as a decimal string annotation.
    # The length cap keeps int() away from its digit limit on a hostile annotation.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _go_quote(text: str) -> str:
    """Approximate Go's ``%q``; identical for Kubernetes object names (DNS labels)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # what json.dumps gives for these, without its machinery
    return json.dumps(text, ensure_ascii=False)
