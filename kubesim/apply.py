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

import msgspec

from .errors import ApiError
from .strategic import merge_key, strategic_merge

Path = tuple[str, ...]
_encode = msgspec.json.encode
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


# frozenset of paths -> to_fields_v1 of it. Most objects of a kind have the same managed
# paths, and a fieldsV1 dict is never mutated once built (entries are replaced, not edited),
# so one dict can serve every entry with that set. Cleared when full.
_TO_FIELDS_CACHE: dict[frozenset[Path], dict[str, Any]] = {}


def _to_fields_v1_shared(paths: set[Path] | frozenset[Path]) -> dict[str, Any]:
    key = paths if isinstance(paths, frozenset) else frozenset(paths)
    hit = _TO_FIELDS_CACHE.get(key)
    if hit is None:
        if len(_TO_FIELDS_CACHE) >= 10_000:
            _TO_FIELDS_CACHE.clear()
        hit = _TO_FIELDS_CACHE[key] = to_fields_v1(set(paths))
    return hit


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
    fields = _to_fields_v1_shared(paths) if paths else None
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
    *,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``applied`` into ``current`` per SSA rules; the result carries managedFields.

    ``base``, when given, is a private deep copy of ``current`` that this call may consume.
    """
    if base is None or not current:
        base = json.loads(json.dumps(current)) if current else {}
    entries = _entries(base)
    # The stored entries are equal to ``entries`` (base is a copy) and their fieldsV1 dicts
    # are the long-lived ones the path cache knows.
    live = (current or {}).get("metadata", {}).get("managedFields") or []
    entry_paths = [_entry_paths_cached(e) for e in live]
    if len(entry_paths) != len(entries):
        entry_paths = [frozenset(_entry_paths(e)) for e in entries]
    applied_paths = leaf_paths(applied)
    conflicts: list[tuple[str, Path]] = []
    for e, e_paths in zip(entries, entry_paths, strict=True):
        if e.get("manager") == manager and e.get("operation") == "Apply":
            continue
        for p in e_paths & applied_paths:
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
    for e, paths in zip(entries, entry_paths, strict=True):
        if e.get("manager") == manager and e.get("operation") == "Apply":
            # Built exactly as before (not from the cache): removals below go in set order
            # among equal-length paths, which matters when merge keys repeat.
            prev_applied = _entry_paths(e)
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


def _equal(old: Any, new: Any, exact: bool) -> bool:
    """``old == new`` (``old`` may be ``_MISSING``); ``exact`` also tells ``true`` from ``1``
    and ``1`` from ``1.0``, which ``==`` does not and paths do (a merge key's JSON is part
    of its path), by comparing the two sides' JSON when ``==`` says they are equal."""
    if old is new:
        return True
    if old is _MISSING or old != new:
        return False
    if not exact:
        return True
    try:
        return _encode(old) == _encode(new)
    except (TypeError, ValueError, OverflowError):
        return False  # not JSON: walk it, which is never wrong


class _Units:
    """The leaf paths of the parts where ``new`` and ``old`` differ, from each side.

    Outside these parts the two objects are equal subtree for subtree, so they contribute the
    same paths; hence ``leaf_paths(new) - leaf_paths(old) == new - old`` and the other way
    round, without walking the whole of ``old`` (a PATCH's largest cost in kubesim).
    A part is a subtree whose two sides are not both maps (or is an associative list): every
    path below it carries its prefix, so no path can come from two parts.
    """

    __slots__ = ("new", "old")

    def __init__(self) -> None:
        self.new: set[Path] = set()
        self.old: set[Path] = set()

    def old_side(self, go: Any, prefix: Path, parent_list: str | None, field: str) -> None:
        if go is not _MISSING:
            _walk(go, prefix, parent_list, self.old, field=field)


def _walk_diff(
    value: Any,
    gn: Any,
    go: Any,
    same: bool,
    prefix: Path,
    parent_list: str | None,
    out: set[Path],
    changed: set[Path],
    field: str = "",
    dups: list[bool] | None = None,
    units: _Units | None = None,
) -> None:
    """``_walk`` of the new object that also records value changes against the old one.

    ``gn``/``go`` are ``get_path(new, prefix)``/``get_path(old, prefix)``, kept up to date
    step by step (``get_path`` is compositional), so a leaf ``p`` lands in ``changed`` exactly
    when ``get_path(old, p) != get_path(new, p)``. ``same`` means ``gn == go`` already holds
    at an ancestor, so every descendant compares equal and no comparison is needed.
    Appends to ``dups`` when an associative list holds two elements with the same key (the
    only way leaf paths can be prefixes of one another). ``units`` (when given and not
    ``same``) collects both sides' paths of the parts that differ (see ``_Units``).
    """
    if same:
        units = None
    if isinstance(value, dict):
        if not value:
            out.add(prefix)
            if not same and go != gn:
                changed.add(prefix)
            if units is not None:
                units.new.add(prefix)
                units.old_side(go, prefix, parent_list, field)
            return
        if units is not None and (not isinstance(go, dict) or not go):
            # Old is a leaf here (an empty map is one); the new side adds its leaves below.
            units.old_side(go, prefix, parent_list, field)
        _walk_fields(value, gn, go, same, prefix, parent_list, out, changed, dups, units)
        return
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        key = merge_key(field, parent_list)
        if key is not None and all(key in v for v in value):
            if units is not None and not _keyed_alike(value, go, key):
                # Not two lists of unique keys: the whole list is one part, on either side.
                mine: set[Path] = set()
                _walk_elements(value, gn, go, same, prefix, field, key, mine, changed, dups)
                out |= mine
                units.new |= mine
                units.old_side(go, prefix, parent_list, field)
                return
            _walk_elements(value, gn, go, same, prefix, field, key, out, changed, dups, units)
            return
    out.add(prefix)
    if not same and go != gn:
        changed.add(prefix)
    if units is not None:
        units.new.add(prefix)
        units.old_side(go, prefix, parent_list, field)


def _walk_elements(
    value: list[dict[str, Any]],
    gn: Any,
    go: Any,
    same: bool,
    prefix: Path,
    field: str,
    key: str,
    out: set[Path],
    changed: set[Path],
    dups: list[bool] | None,
    units: _Units | None = None,
) -> None:
    """``_walk_diff`` of an associative list's elements, each paired with old's element of
    the same key. With ``units`` both lists hold unique keys (``_keyed_alike``), so an
    element only one side has is a part of its own, and a shared one is walked as a map."""
    seen: set[str] = set()
    for elem in value:
        elem_prefix = (*prefix, "k:" + json.dumps({key: elem[key]}, separators=(",", ":")))
        out.add((*elem_prefix, "."))
        seen.add(elem_prefix[-1])
        want = json.loads(elem_prefix[-1][2:])[key]
        en = _first(gn, key, want)
        if same:
            eo, elem_same = en, True
        else:
            eo = _first(go, key, want)
            elem_same = _equal(eo, en, units is not None)
        if units is not None and eo is _MISSING:
            units.new.add((*elem_prefix, "."))
        _walk_fields(elem, en, eo, elem_same, elem_prefix, field, out, changed, dups, units)
    if len(seen) < len(value) and dups is not None:
        dups.append(True)
    if units is not None and not same:
        keys = {e[key] for e in value}
        for elem in go:
            if elem[key] not in keys:  # only old has it: its marker and fields, as _walk has
                elem_prefix = (*prefix, "k:" + json.dumps({key: elem[key]}, separators=(",", ":")))
                units.old.add((*elem_prefix, "."))
                for k, v in elem.items():
                    _walk(v, (*elem_prefix, f"f:{k}"), field, units.old, field=k)


def _keyed_alike(value: list[dict[str, Any]], go: Any, key: str) -> bool:
    """Whether ``value`` and ``go`` are both lists of maps with unique ``key`` values, each a
    string or an integer (so that ``==``, which pairs elements, agrees with the paths' JSON)."""
    if not isinstance(go, list) or not go:
        return False
    for side in (value, go):
        if not all(isinstance(e, dict) and type(e.get(key)) in (str, int) for e in side):
            return False
        if len({e[key] for e in side}) < len(side):
            return False
    return True


def _walk_fields(
    value: dict[str, Any],
    gn: Any,
    go: Any,
    same: bool,
    prefix: Path,
    parent_list: str | None,
    out: set[Path],
    changed: set[Path],
    dups: list[bool] | None,
    units: _Units | None = None,
    ignored: frozenset[str] = frozenset(),
) -> None:
    """``_walk_diff`` each field of a map (an object, or an associative list's element),
    pairing it with the same field under ``gn``/``go``; with ``units``, the fields only
    ``go`` has (but ``ignored``) are parts of their own."""
    gn_dict = isinstance(gn, dict)
    go_dict = isinstance(go, dict)
    for k, v in value.items():
        cn = gn.get(k, _MISSING) if gn_dict else _MISSING
        if same:
            co, child_same = cn, True
        else:
            co = go.get(k, _MISSING) if go_dict else _MISSING
            child_same = _equal(co, cn, units is not None)
        _walk_diff(
            v, cn, co, child_same, (*prefix, f"f:{k}"), parent_list, out, changed, k, dups, units
        )
    if units is not None and go_dict and not same:
        for k, v in go.items():
            if k not in value and k not in ignored:
                _walk(v, (*prefix, f"f:{k}"), parent_list, units.old, field=k)


def _first(cur: Any, key: str, want: Any) -> Any:
    """The element ``get_path`` picks for ``k:{key: want}`` in ``cur`` (or ``_MISSING``)."""
    if not isinstance(cur, list):
        return _MISSING
    for e in cur:
        if isinstance(e, dict) and e.get(key) == want:
            return e
    return _MISSING


def _paths_and_changes(
    old: dict[str, Any], new: dict[str, Any], include_status: bool, dups: list[bool]
) -> tuple[set[Path], set[Path], set[Path]]:
    """``(new_paths, changed, removed)``: ``new_paths = leaf_paths(new)``; ``changed`` the
    paths in it not ending "." whose value differs from old's, plus those ``old`` lacks;
    ``removed = leaf_paths(old) - new_paths``. Walks ``old`` only where it differs."""
    out: set[Path] = set()
    changed: set[Path] = set()
    units = _Units()

    def tracked(key: str) -> bool:
        return key not in ("apiVersion", "kind") and (key != "status" or include_status)

    for key, value in new.items():
        if not tracked(key):
            continue
        co = old.get(key, _MISSING)
        same = _equal(co, value, True)
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _IGNORED_META}
            if same:
                pass
            elif not isinstance(co, dict):
                units.old_side(co, ("f:metadata",), None, "metadata")
            elif not meta:  # nothing of new's to walk: old's tracked metadata all differs
                _walk_fields({}, {}, co, False, ("f:metadata",), None, out, changed, dups,
                             units, _IGNORED_META)  # fmt: skip
            if meta:
                # get_path walks the real metadata, so compare against it, not ``meta``.
                _walk_fields(meta, value, co, same, ("f:metadata",), None, out, changed, dups,
                             units, _IGNORED_META)  # fmt: skip
        elif key == "metadata" and not same:  # not a map: never valid, but still tracked
            _walk_diff(value, value, co, same, ("f:metadata",), None, out, changed, key, dups)
            units.new |= leaf_paths({key: value})
            units.old |= leaf_paths({key: co}) if co is not _MISSING else set()
        else:
            _walk_diff(value, value, co, same, (f"f:{key}",), None, out, changed, key, dups, units)
    for key, value in old.items():
        if key not in new and tracked(key):
            units.old |= leaf_paths({key: value}, include_status)
    changed |= units.new - units.old
    return out, changed, units.old - units.new


# fieldsV1 dict -> its paths. Stored objects (and so their managedFields entries) are
# immutable, and each entry is carried over from version to version by reference, so an
# Update mostly re-reads the same fieldsV1 dicts. The key object is kept alive by the cache,
# so its id cannot be reused while cached.
_FIELDS_CACHE: dict[int, tuple[Any, frozenset[Path]]] = {}
_FIELDS_CACHE_MAX = 50_000


def _remember(fields: Any, paths: frozenset[Path]) -> None:
    """Cache ``paths`` as the paths of ``fields``; only when ``from_fields_v1`` agrees."""
    if len(_FIELDS_CACHE) >= _FIELDS_CACHE_MAX:
        _FIELDS_CACHE.clear()
    _FIELDS_CACHE[id(fields)] = (fields, paths)


def _entry_paths_cached(entry: dict[str, Any]) -> frozenset[Path]:
    fields = entry.get("fieldsV1") or {}
    hit = _FIELDS_CACHE.get(id(fields))
    if hit is not None and hit[0] is fields:
        return hit[1]
    paths = frozenset(from_fields_v1(fields))
    _remember(fields, paths)
    return paths


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
    dups: list[bool] = []
    if old is None:
        new_paths = leaf_paths(new, include_status)
        changed = new_paths
        entries: list[dict[str, Any]] = []
        removed: set[Path] = set()
    else:
        new_paths, changed, removed = _paths_and_changes(old, new, include_status, dups)
        entries = _entries(old)
    out: list[dict[str, Any]] = []
    mine: set[Path] = set(changed)
    for e in entries:
        paths = _entry_paths_cached(e)
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
            e["fieldsV1"] = _to_fields_v1_shared(trimmed)
            # A subset of from_fields_v1's output is prefix-free, so it round-trips.
            _remember(e["fieldsV1"], trimmed)
        out.append(e)
    mine &= new_paths
    result = _set_entry(out, manager, "Update", mine, api_version, now, subresource)
    new.setdefault("metadata", {})["managedFields"] = result
    if old is not None and mine and not dups:
        # Without duplicate merge keys the leaf paths of ``new`` are prefix-free, so the
        # entry's fieldsV1 (== to_fields_v1(mine)) reads back as exactly ``mine``.
        for e in result:
            if (
                e.get("manager") == manager
                and e.get("operation") == "Update"
                and e.get("subresource") == subresource
            ):
                _remember(e["fieldsV1"], frozenset(mine))
                break
