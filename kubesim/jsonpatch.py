"""RFC 7386 JSON merge patch and RFC 6902 JSON patch.

Both functions are pure: they never mutate their inputs and return a new document.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _unprocessable(f"doc is missing path: {path!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            try:
                cur = cur[int(tok)]
            except (ValueError, IndexError):
                raise _unprocessable(f"doc is missing path: {path!r}") from None
        else:
            raise _unprocessable(f"doc is missing path: {path!r}")
    return cur


# What kube-apiserver answers for any JSON patch that cannot be applied (a missing path, a
# failed "test", a bad index): a generic 422 whose details are empty, so the specific reason
# never reaches the client. ``why`` is kept on the exception for kubesim's own logs and tests.
REJECTED = "the server rejected our request due to an error in our request"


def _unprocessable(why: str) -> ApiError:
    error = ApiError(422, "Invalid", REJECTED, details={})
    error.why = why
    return error


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for tok in _split(path):
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise _unprocessable(f"doc is missing path: {path!r}")
    return cur


def _remove(doc: Any, path: str) -> Any:
    tokens = _split(path)
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"Unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError):
            raise _unprocessable(f"Unable to remove index {last}") from None
    raise _unprocessable(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    tokens = _split(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _unprocessable(f"doc is missing key: {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise _unprocessable(f"invalid array index {last!r}") from None
            if replace:
                if idx >= len(parent):
                    raise _unprocessable(f"doc is missing path: {path!r}")
                parent[idx] = value
            else:
                if idx > len(parent):
                    raise _unprocessable(f"index out of bounds: {path!r}")
                parent.insert(idx, value)
    else:
        raise _unprocessable(f"doc is missing path: {path!r}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 operation list to a deep copy of ``target``."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _unprocessable(f"testing value {path} failed")
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc
