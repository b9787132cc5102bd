"""Label and field selectors, parsed once and matched many times.

Label selector grammar (as kube-apiserver accepts it): comma-separated requirements, each one of
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k`` (absent).
Commas inside parentheses belong to the value set, so the string is tokenised, not split.
Field selectors support ``=``, ``==`` and ``!=`` on dotted paths (``metadata.name``,
``metadata.namespace``, ``status.phase``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Requirement = tuple[str, str, frozenset[str]]  # (key, op, values); op in =,!=,in,notin,exists,!
LabelMatcher = Callable[[Mapping[str, str]], bool]

_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``text`` into requirements; raises a 400 ApiError on malformed input."""
    if not text or not text.strip():
        return []
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: invalid label selector {text!r}")
        tokens.append(m.group(1))
        pos = m.end()
    reqs: list[Requirement] = []
    i = 0

    def expect_word() -> str:
        nonlocal i
        if i >= len(tokens) or tokens[i] in ("!=", "==", "=", "(", ")", ",", "!"):
            raise bad_request(f"unable to parse requirement: found unexpected token in {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        if tokens[i] == "!":
            i += 1
            reqs.append((expect_word(), "!", frozenset()))
        else:
            key = expect_word()
            op = tokens[i] if i < len(tokens) else ","
            if op in ("=", "==", "!="):
                i += 1
                val = ""
                if i < len(tokens) and tokens[i] not in (",",):
                    val = expect_word()
                reqs.append((key, "!=" if op == "!=" else "=", frozenset([val])))
            elif op in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise bad_request(f"unable to parse requirement: expected '(' in {text!r}")
                i += 1
                vals: set[str] = set()
                while i < len(tokens) and tokens[i] != ")":
                    if tokens[i] == ",":
                        i += 1
                        continue
                    vals.add(expect_word())
                if i >= len(tokens):
                    raise bad_request(f"unable to parse requirement: expected ')' in {text!r}")
                i += 1
                reqs.append((key, op, frozenset(vals)))
            elif op == ",":
                reqs.append((key, "exists", frozenset()))
            else:
                raise bad_request(f"unable to parse requirement: unexpected {op!r} in {text!r}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise bad_request(f"unable to parse requirement: expected ',' in {text!r}")
            i += 1
    return reqs


def label_matcher(reqs: list[Requirement]) -> LabelMatcher | None:
    """A predicate over a labels mapping, or None when everything matches."""
    if not reqs:
        return None

    def match(labels: Mapping[str, str]) -> bool:
        for key, op, vals in reqs:
            present = key in labels
            if op == "=":
                if not present or labels[key] not in vals:
                    return False
            elif op == "!=":
                if present and labels[key] in vals:
                    return False
            elif op == "in":
                if not present or labels[key] not in vals:
                    return False
            elif op == "notin":
                if present and labels[key] in vals:
                    return False
            elif op == "exists":
                if not present:
                    return False
            elif op == "!" and present:
                return False
        return True

    return match


def selector_from_label_selector(sel: Mapping[str, Any] | None) -> LabelMatcher | None:
    """Matcher for a structured ``LabelSelector`` (matchLabels + matchExpressions).

    An empty or missing selector matches nothing here, because that is how workload
    controllers treat it (they never adopt every pod in a namespace).
    """
    if not sel:
        return lambda _labels: False
    reqs: list[Requirement] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, "=", frozenset([str(v)])))
    for expr in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(
            expr.get("operator", ""), "in"
        )
        reqs.append((expr["key"], op, frozenset(expr.get("values") or [])))
    if not reqs:
        return lambda _labels: False
    return label_matcher(reqs)


def parse_field_selector(text: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """A predicate over whole objects, or None when there is no selector."""
    if not text or not text.strip():
        return None
    terms: list[tuple[list[str], bool, str]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        terms.append((m.group(1).split("."), m.group(2) == "!=", m.group(3)))

    def match(obj: Mapping[str, Any]) -> bool:
        for path, negate, want in terms:
            cur: Any = obj
            for seg in path:
                cur = cur.get(seg) if isinstance(cur, Mapping) else None
            have = "" if cur is None else (str(cur).lower() if isinstance(cur, bool) else str(cur))
            if (have == want) == negate:
                return False
        return True

    return match


def field_selector_name(text: str | None) -> str | None:
    """The exact ``metadata.name`` a field selector pins, letting lists skip a scan."""
    if not text:
        return None
    for part in text.split(","):
        m = re.match(r"^\s*metadata\.name\s*==?\s*(.+?)\s*$", part)
        if m:
            return m.group(1)
    return None
