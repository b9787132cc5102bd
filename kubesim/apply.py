"""Server-side apply and ``managedFields`` bookkeeping.

Ownership model: every *leaf* of an object (scalar, atomic list, empty map, and the identity
``"."`` of each element of an associative list) is a path of FieldsV1 keys such as
``("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")``.
Each managedFields entry owns a set of those paths. Invariants:

* An Apply by manager M conflicts (409) when it sets a path owned by another manager to a
  different value than the live one, unless ``force``; forcing moves ownership to M.
* An Apply removes the paths M applied last time, no longer applies, and nobody else owns.
* An Update (create/replace/patch) by M takes ownership of every path it changed, taking it
  away from the other managers; entries left with no paths disappear.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError
from .strategic import merge_key, strategic_merge

Path = tuple[str, ...]
_MISSING = object()
# Fields the API server never tracks in managedFields.
_IGNORED_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    }
)


def leaf_paths(obj: dict[str, Any], include_status: bool = False) -> set[Path]:
    """All owned-field paths of ``obj`` (see module docstring)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not include_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _IGNORED_META}
            if meta:
                _walk(meta, ("f:metadata",), None, out)
        else:
            _walk(value, (f"f:{key}",), None, out, field=key)
    return out


def _walk(
    value: Any, prefix: Path, parent_list: str | None, out: set[Path], field: str = ""
) -> None:
    if isinstance(value, dict):
        if not value:
            out.add(prefix)
            return
        for k, v in value.items():
            _walk(v, (*prefix, f"f:{k}"), parent_list, out, field=k)
        return
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        key = merge_key(field, parent_list)
        if key is not None and all(key in v for v in value):
            for elem in value:
                elem_prefix = (*prefix, "k:" + json.dumps({key: elem[key]}, separators=(",", ":")))
                out.add((*elem_prefix, "."))
                for k, v in elem.items():
                    _walk(v, (*elem_prefix, f"f:{k}"), field, out, field=k)
            return
    out.add(prefix)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for seg in path:
            node = node.setdefault(seg, {})
    return root


def from_fields_v1(fields: dict[str, Any]) -> set[Path]:
    out: set[Path] = set()

    def rec(node: dict[str, Any], prefix: Path) -> None:
        if not node:
            if prefix:
                out.add(prefix)
            return
        for k, v in node.items():
            rec(v if isinstance(v, dict) else {}, (*prefix, k))

    rec(fields, ())
    return out


def get_path(obj: Any, path: Path) -> Any:
    cur = obj
    for seg in path:
        if seg == ".":
            return cur
        if seg.startswith("f:"):
            if not isinstance(cur, dict) or seg[2:] not in cur:
                return _MISSING
            cur = cur[seg[2:]]
        elif seg.startswith("k:"):
            want = json.loads(seg[2:])
            if not isinstance(cur, list):
                return _MISSING
            cur = next(
                (
                    e
                    for e in cur
                    if isinstance(e, dict) and all(e.get(k) == v for k, v in want.items())
                ),
                _MISSING,
            )
            if cur is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return cur


def remove_path(obj: Any, path: Path) -> None:
    """Delete ``path`` from ``obj`` in place (an element when the path ends in ``"."``)."""
    if path and path[-1] == ".":
        parent = get_path(obj, path[:-2])
        want = json.loads(path[-2][2:])
        if isinstance(parent, list):
            parent[:] = [
                e
                for e in parent
                if not (isinstance(e, dict) and all(e.get(k) == v for k, v in want.items()))
            ]
        return
    parent = get_path(obj, path[:-1])
    if isinstance(parent, dict) and path[-1].startswith("f:"):
        parent.pop(path[-1][2:], None)


def _path_str(path: Path) -> str:
    parts = []
    for seg in path:
        if seg.startswith("f:"):
            parts.append("." + seg[2:])
        elif seg.startswith("k:"):
            parts.append(
                "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(seg[2:]).items()) + "]"
            )
    return "".join(parts)


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in (obj.get("metadata", {}).get("managedFields") or [])]


def _entry_paths(entry: dict[str, Any]) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1") or {})


def _set_entry(
    entries: list[dict[str, Any]],
    manager: str,
    operation: str,
    paths: set[Path],
    api_version: str,
    now: str,
    subresource: str | None,
) -> list[dict[str, Any]]:
    """Replace (in place, keeping list order) the entry of (manager, operation, subresource).

    Unchanged ownership keeps its timestamp, so no-op writes stay no-ops.
    """
    fields = to_fields_v1(paths) if paths else None
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    out: list[dict[str, Any]] = []
    placed = False
    for e in entries:
        if (
            e.get("manager") == manager
            and e.get("operation") == operation
            and e.get("subresource") == subresource
        ):
            if fields is not None and not placed:
                out.append(e if e.get("fieldsV1") == fields else entry)
                placed = True
            continue
        out.append(e)
    if fields is not None and not placed:
        out.append(entry)
    return out


def server_side_apply(
    current: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    api_version: str,
    now: str,
) -> dict[str, Any]:
    """Merge ``applied`` into ``current`` per SSA rules; the result carries managedFields."""
    base: dict[str, Any] = json.loads(json.dumps(current)) if current else {}
    entries = _entries(base)
    applied_paths = leaf_paths(applied)
    conflicts: list[tuple[str, Path]] = []
    for e in entries:
        if e.get("manager") == manager and e.get("operation") == "Apply":
            continue
        for p in _entry_paths(e) & applied_paths:
            if p[-1] == ".":
                continue
            mine, live = get_path(applied, p), get_path(base, p)
            if mine != live and not (mine == {} and isinstance(live, dict)):
                conflicts.append((e["manager"], p))
    if conflicts and not force:
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{m}": {_path_str(p)}',
                "field": _path_str(p),
            }
            for m, p in sorted(conflicts)
        ]
        detail = "\n".join(f'- conflict with "{m}": {_path_str(p)}' for m, p in sorted(conflicts))
        n = len(conflicts)
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {n} conflict{'s' if n != 1 else ''}: "
            + (detail[2:] if n == 1 else "\n" + detail),
            {"causes": causes},
        )
    conflicting = {p for _, p in conflicts}
    prev_applied: set[Path] = set()
    others: set[Path] = set()
    new_entries: list[dict[str, Any]] = []
    for e in entries:
        paths = _entry_paths(e)
        if e.get("manager") == manager and e.get("operation") == "Apply":
            prev_applied = paths
            continue
        if conflicting & paths:
            paths -= conflicting
            if not paths:
                continue
            e["fieldsV1"] = to_fields_v1(paths)
        others |= paths
        new_entries.append(e)
    meta_entries = new_entries
    merged = strategic_merge(base, applied)
    for p in sorted(prev_applied - applied_paths - others, key=len, reverse=True):
        remove_path(merged, p)
    merged.setdefault("metadata", {})["managedFields"] = _set_entry(
        meta_entries, manager, "Apply", applied_paths, api_version, now, None
    )
    return merged


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    api_version: str,
    now: str,
    subresource: str | None = None,
) -> None:
    """Record an Update by ``manager`` in ``new``'s managedFields (mutates ``new``)."""
    include_status = subresource == "status"
    new_paths = leaf_paths(new, include_status)
    if old is None:
        changed = new_paths
        entries: list[dict[str, Any]] = []
    else:
        old_paths = leaf_paths(old, include_status)
        changed = {p for p in new_paths if p[-1] != "." and get_path(old, p) != get_path(new, p)}
        changed |= {p for p in new_paths - old_paths}
        entries = _entries(old)
    removed = set() if old is None else (leaf_paths(old, include_status) - new_paths)
    out: list[dict[str, Any]] = []
    mine: set[Path] = set(changed)
    for e in entries:
        paths = _entry_paths(e)
        if (
            e.get("manager") == manager
            and e.get("operation") == "Update"
            and e.get("subresource") == subresource
        ):
            mine |= paths - removed
            continue
        trimmed = paths - changed - removed
        if trimmed != paths:
            if not trimmed:
                continue
            e["fieldsV1"] = to_fields_v1(trimmed)
        out.append(e)
    mine &= new_paths
    new.setdefault("metadata", {})["managedFields"] = _set_entry(
        out, manager, "Update", mine, api_version, now, subresource
    )
