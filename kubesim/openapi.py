"""A minimal OpenAPI v3 surface.

kubectl (apply, create -f, replace) checks the OpenAPI v3 document of a group-version to learn
whether PATCH supports the ``fieldValidation`` query parameter; without it, kubectl falls back
to client-side validation, which needs the full OpenAPI v2 schema, and fails. kubesim publishes
the paths with their GVK extensions and parameters, and no schemas (kubectl then computes
strategic merge patches from its compiled-in types, as it does for any built-in kind).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .resources import BY_GV

_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root() -> dict[str, Any]:
    paths = {}
    for group, version in BY_GV:
        p = _gv_path(group, version)
        digest = hashlib.sha256(p.encode()).hexdigest()[:32].upper()
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
    return {"paths": paths}


def group_version(group: str, version: str) -> dict[str, Any] | None:
    types = BY_GV.get((group, version))
    if types is None:
        return None
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for t in types.values():
        gvk = {"group": group, "version": version, "kind": t.kind}
        base = (
            f"{prefix}/namespaces/{{namespace}}/{t.plural}"
            if t.namespaced
            else f"{prefix}/{t.plural}"
        )
        params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in _PARAMS]

        def op(
            action: str, gvk: dict[str, str] = gvk, params: list[dict[str, Any]] = params
        ) -> dict[str, Any]:
            return {
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }

        paths[base] = {"get": op("list"), "post": op("post")}
        paths[base + "/{name}"] = {
            "get": op("get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete"),
        }
        for sub in t.subresources:
            paths[f"{base}/{{name}}/{sub}"] = {
                "get": op("get"),
                "put": op("put"),
                "patch": op("patch"),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.1"},
        "paths": paths,
        "components": {"schemas": {}},
    }
