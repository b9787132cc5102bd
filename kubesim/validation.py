"""Validation producing 422 ``Invalid`` errors with causes, like kube-apiserver.

Only the rules this project's users can trip are implemented: object names, label keys and
values, a Deployment/ReplicaSet selector that must match its template, and containers.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError, invalid
from .resources import ResourceType
from .selectors import selector_from_label_selector

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Cause = tuple[str, str, str]


def _name_causes(rt: ResourceType, name: str) -> list[Cause]:
    if rt.plural in ("namespaces",):
        ok, limit = bool(_DNS1123_LABEL.match(name)), 63
        what = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"  # noqa: E501 - verbatim message
    elif rt.plural == "services":
        ok, limit = bool(_DNS1035_LABEL.match(name)), 63
        what = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"  # noqa: E501 - verbatim message
    else:
        ok, limit = bool(_DNS1123_SUBDOMAIN.match(name)), 253
        what = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"  # noqa: E501 - verbatim message
    causes: list[Cause] = []
    if not ok:
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {what}'))
    if len(name) > limit:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be no more than {limit} characters',
            )
        )
    return causes


# Label sets found valid, by content. A Deployment, its ReplicaSets and pods carry the same few
# labels on every write, so most writes validate a label set already seen: about 3% of
# kubesim's time in a rollout, for regexes whose answer cannot change.
_VALID_LABELS: set[tuple[tuple[Any, Any], ...]] = set()
_VALID_LABELS_MAX = 50_000


def _label_causes(labels: Any, field: str) -> list[Cause]:
    if not isinstance(labels, dict):
        return []
    key = tuple(labels.items())
    try:
        if key in _VALID_LABELS:
            return []
    except TypeError:  # an unhashable value: never valid, and the check below says why
        return _check_labels(labels, field)
    causes = _check_labels(labels, field)
    if not causes:
        if len(_VALID_LABELS) >= _VALID_LABELS_MAX:
            _VALID_LABELS.clear()
        _VALID_LABELS.add(key)
    return causes


def _check_labels(labels: dict[str, Any], field: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[: -len(name) - 1] if "/" in key else ""
        if (
            not _LABEL_NAME.match(name)
            or len(name) > 63
            or (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",  # noqa: E501 - verbatim message
                )
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            causes.append(
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",  # noqa: E501 - verbatim message
                )
            )
    return causes


def _pod_spec_causes(spec: Any, field: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [("FieldValueRequired", field, "Required value")]
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{field}.containers", "Required value")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(containers):
        name = c.get("name") if isinstance(c, dict) else None
        if not name:
            causes.append(("FieldValueRequired", f"{field}.containers[{i}].name", "Required value"))
        elif name in seen:
            causes.append(
                (
                    "FieldValueDuplicate",
                    f"{field}.containers[{i}].name",
                    f'Duplicate value: "{name}"',
                )
            )
        else:
            seen.add(name)
        if isinstance(c, dict) and not c.get("image"):
            causes.append(
                ("FieldValueRequired", f"{field}.containers[{i}].image", "Required value")
            )
    return causes


def validate(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid if ``obj`` is not an acceptable ``rt`` object."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes = _name_causes(rt, name)
    causes += _label_causes(meta.get("labels"), "metadata.labels")
    spec = obj.get("spec")
    if rt.plural in ("deployments", "replicasets"):
        spec = spec if isinstance(spec, dict) else {}
        sel = spec.get("selector")
        template = spec.get("template") or {}
        tlabels = (template.get("metadata") or {}).get("labels") or {}
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        else:
            matcher = selector_from_label_selector(sel)
            if matcher is not None and not matcher(tlabels):
                causes.append(
                    (
                        "FieldValueInvalid",
                        "spec.template.metadata.labels",
                        f"Invalid value: {tlabels!r}: `selector` does not match template `labels`",
                    )
                )
        causes += _label_causes(tlabels, "spec.template.metadata.labels")
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        causes += _pod_spec_causes(template.get("spec"), "spec.template.spec")
    elif rt.plural == "pods":
        causes += _pod_spec_causes(spec, "spec")
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def check_immutable_selector(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    if rt.plural in ("deployments", "replicasets"):
        a = (old.get("spec") or {}).get("selector")
        b = (new.get("spec") or {}).get("selector")
        if a != b:
            raise invalid(
                rt.kind,
                rt.group,
                new["metadata"]["name"],
                [
                    (
                        "FieldValueInvalid",
                        "spec.selector",
                        f"Invalid value: {b!r}: field is immutable",
                    )
                ],
            )


def require_name(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    if not meta.get("name") and not meta.get("generateName"):
        raise ApiError(
            422,
            "Invalid",
            f'{rt.kind}.{rt.group} "" is invalid: metadata.name: Required value: name or generateName is required'  # noqa: E501 - verbatim message
            if rt.group
            else f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required',  # noqa: E501 - verbatim message
            {
                "kind": rt.kind,
                "group": rt.group,
                "causes": [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            },
        )
