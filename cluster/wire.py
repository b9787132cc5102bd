"""Decode less: a Deployment as the rollout gate reads it, straight from the API's JSON bytes.

A Deployment's JSON is mostly managedFields' ``fieldsV1`` (about 5 KB of a 6 KB object), which
nothing here reads. ``json.loads`` builds every one of those nested dicts and then we threw them
away; the msgspec decoders below are given only the fields that ``cluster.status`` reads, so
the rest is skipped by the parser without becoming Python objects (about 6x less CPU per
object, measured in ``bench command``'s profile: watch events, LIST pages and PATCH answers).

Invariants:
- What these return is the part of ``slim(json.loads(data))`` that the gate reads: plain dicts
  and lists, with the keys and values the API sent for the fields kept (a ``null`` reads as
  absent); managedFields entries keep only (manager, subresource, time). ``cluster.status``
  reads the same snapshot from either. Anything that needs more of the object (an apply, a
  drift diff) reads the whole JSON, not these.
- Scalars are decoded as whatever JSON holds (``Any``), so an odd value (a string where an
  integer belongs) reaches the tolerant readers in ``cluster.status`` as it would have before.
  Only a shape msgspec cannot map (an object where a list belongs) falls back to
  ``json.loads``; malformed JSON raises ``ValueError`` either way.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

__all__ = ["decode_deployment", "decode_deployment_list", "decode_event_object", "slim"]


class _Struct(msgspec.Struct, omit_defaults=True, rename="camel"):
    """Absent stays absent: ``omit_defaults`` drops every field the API did not send."""


class _Container(_Struct):
    name: Any = None
    image: Any = None


class _PodSpec(_Struct):
    containers: list[_Container] | None = None


class _Template(_Struct):
    spec: _PodSpec | None = None


class _Spec(_Struct):
    replicas: Any = None
    paused: Any = None
    template: _Template | None = None


class _ManagedFieldsEntry(_Struct):
    manager: Any = None
    subresource: Any = None
    time: Any = None


class _Metadata(_Struct):
    name: Any = None
    namespace: Any = None
    generation: Any = None
    resource_version: Any = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    managed_fields: list[_ManagedFieldsEntry] | None = None


class _Status(_Struct):
    observed_generation: Any = None
    replicas: Any = None
    updated_replicas: Any = None
    ready_replicas: Any = None
    available_replicas: Any = None
    unavailable_replicas: Any = None
    conditions: list[dict[str, Any]] | None = None


class _Deployment(_Struct):
    metadata: _Metadata | None = None
    spec: _Spec | None = None
    status: _Status | None = None


class _ListMetadata(_Struct):
    resource_version: Any = None
    continue_: Any = msgspec.field(default=None, name="continue")


class _DeploymentList(_Struct):
    metadata: _ListMetadata | None = None
    items: list[_Deployment] | None = None


class _Event(_Struct):
    object: _Deployment | None = None


_deployment = msgspec.json.Decoder(_Deployment)
_deployment_list = msgspec.json.Decoder(_DeploymentList)
_event = msgspec.json.Decoder(_Event)
_as_dicts = msgspec.to_builtins


def decode_deployment(data: bytes) -> dict[str, Any]:
    """One Deployment (a GET or PATCH answer), as the gate reads it."""
    try:
        return _as_dicts(_deployment.decode(data))
    except msgspec.ValidationError:
        return slim(json.loads(data))


def decode_deployment_list(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One LIST page: its items as the gate reads them, and the list's metadata
    (``resourceVersion``, ``continue``)."""
    try:
        page = _as_dicts(_deployment_list.decode(data))
    except msgspec.ValidationError:
        page = json.loads(data)
        page["items"] = [slim(item) for item in page.get("items") or [] if isinstance(item, dict)]
    return page.get("items") or [], page.get("metadata") or {}


def decode_event_object(line: bytes) -> dict[str, Any]:
    """The object of one ADDED/MODIFIED watch event line, as the gate reads it."""
    try:
        return _as_dicts(_event.decode(line)).get("object") or {}
    except msgspec.ValidationError:
        return slim(json.loads(line).get("object") or {})


def slim(item: dict[str, Any]) -> dict[str, Any]:
    """A fully decoded Deployment with managedFields cut to (manager, subresource, time).

    ``cluster.status`` reads our field manager's last write time from managedFields (a
    timed-out condition from before our patch); ``fieldsV1`` is never read.
    """
    metadata = item.get("metadata")
    if isinstance(metadata, dict) and metadata.get("managedFields"):
        metadata["managedFields"] = [
            {k: entry.get(k) for k in ("manager", "subresource", "time") if k in entry}
            for entry in metadata["managedFields"]
            if isinstance(entry, dict)
        ]
    return item
