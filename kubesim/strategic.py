"""Strategic merge patch, as kube-apiserver applies it to built-in types.

Real Kubernetes reads merge keys from Go struct tags; kubesim keeps the same table keyed by
field name (and, for ``ports``, by whether the list sits inside a container), which covers
every built-in type it serves. Supported directives: ``$patch: replace|delete|merge`` on maps
and list elements, ``$setElementOrder/<field>``, ``$retainKeys``,
``$deleteFromPrimitiveList/<field>``; ``null`` deletes a key. Pure: inputs are never mutated.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import bad_request

# field name -> merge key of the list elements
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "readinessGates": "conditionType",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
CONTAINER_FIELDS = frozenset({"containers", "initContainers", "ephemeralContainers"})
# Primitive lists whose patch strategy is "merge" (set union) rather than replace.
PRIMITIVE_MERGE = frozenset({"finalizers"})

_DELETE = object()


def merge_key(field: str, parent_list: str | None) -> str | None:
    """Merge key for list ``field`` found inside an element of ``parent_list`` (or a map)."""
    if field == "ports":
        return "containerPort" if parent_list in CONTAINER_FIELDS else "port"
    return MERGE_KEYS.get(field)


def strip_directives(value: Any) -> Any:
    """A deep copy of ``value`` without any ``$``-prefixed directive keys."""
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [
            strip_directives(v) for v in value if not (isinstance(v, dict) and set(v) == {"$patch"})
        ]
    return value


def strategic_merge(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a strategic merge ``patch`` to ``original`` and return the new object."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _merge_map(original, patch, None)
    if result is _DELETE:
        return {}
    return result


def _merge_map(orig: Any, patch: dict[str, Any], parent_list: str | None) -> Any:
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return strip_directives(patch)
    if directive == "delete":
        return _DELETE
    retain = patch.pop("$retainKeys", None)
    result: dict[str, Any] = dict(orig) if isinstance(orig, dict) else {}
    orders: dict[str, list[Any]] = {}
    prim_deletes: dict[str, list[Any]] = {}
    for k in list(patch):
        if k.startswith("$setElementOrder/"):
            orders[k[len("$setElementOrder/") :]] = patch.pop(k)
        elif k.startswith("$deleteFromPrimitiveList/"):
            prim_deletes[k[len("$deleteFromPrimitiveList/") :]] = patch.pop(k)
        elif k.startswith("$"):
            patch.pop(k)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value, parent_list)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            cur = result.get(key)
            result[key] = _merge_list(cur if isinstance(cur, list) else [], value, key, parent_list)
        else:
            result[key] = value
    for key, values in prim_deletes.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _reorder(result[key], order, merge_key(key, parent_list))
    return result


def _merge_list(
    orig: list[Any], patch: list[Any], field: str, parent_list: str | None
) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" and len(p) == 1 for p in patch):
        return strip_directives([p for p in patch if not (isinstance(p, dict) and "$patch" in p)])
    key = merge_key(field, parent_list)
    if key is None or not all(isinstance(p, dict) for p in patch):
        if field in PRIMITIVE_MERGE:
            out = list(orig)
            out.extend(v for v in patch if v not in out)
            return out
        return strip_directives(patch)
    result = [copy.copy(e) for e in orig]
    for item in patch:
        if item.get("$patch") == "delete" and key not in item:
            # {"$patch": "delete"} matching every element except by other fields: real API
            # deletes elements equal on the given fields; approximate by matching all keys.
            rest = {k: v for k, v in item.items() if k != "$patch"}
            result = [e for e in result if not all(e.get(k) == v for k, v in rest.items())]
            continue
        want = item.get(key)
        idx = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == want),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        merged = _merge_map(result[idx] if idx is not None else {}, item, field)
        if merged is _DELETE:
            if idx is not None:
                result.pop(idx)
        elif idx is not None:
            result[idx] = merged
        else:
            result.append(merged)
    return result


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key and isinstance(v, dict) else v

    wanted = [ident(o) for o in order]
    ranked = {w: i for i, w in enumerate(wanted) if isinstance(w, (str, int, float))}
    in_order = sorted((v for v in items if ident(v) in ranked), key=lambda v: ranked[ident(v)])
    rest = [v for v in items if ident(v) not in ranked]
    return in_order + rest
