"""OpenAPI v2 and v3: the upstream documents when fetched, else a schemaless v3 surface.

With the upstream ``api/openapi-spec`` fetched (``python -m kubesim fetch-openapi``, see
kubesim/openapi_spec.py), kubesim serves kube-apiserver v1.37.2's own documents for every
group-version it serves: ``/openapi/v3`` lists them with ``serverRelativeURL``s carrying the
document's hash (upper-case hex SHA-512, as kube-openapi's handler3 computes it; a hashed URL is
served ``Cache-Control: public, immutable``), so ``kubectl explain`` finds the schemas. The
documents describe every built-in resource of that release, including some kubesim does not
serve; kubectl reaches schemas through discovery first, so only served types are explained.
``/openapi/v2`` is served as JSON to clients that accept JSON; client-go's
``OpenAPISchema()`` asks for protobuf only, which kubesim does not speak, and gets a 404 as
before.

Without the fetched documents: kubectl (apply, create -f, replace) checks the OpenAPI v3
document of a group-version to learn whether PATCH supports the ``fieldValidation`` query
parameter; without it, kubectl falls back to client-side validation, which needs the full
OpenAPI v2 schema, and fails. kubesim then publishes the paths with their GVK extensions and
parameters, and no schemas (kubectl computes strategic merge patches from its compiled-in
types, as it does for any built-in kind); ``kubectl explain`` cannot work.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from . import openapi_spec
from .resources import BY_GV

_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[bytes, str]] = {}


def upstream(relative: str) -> tuple[bytes, str] | None:
    """(bytes, hash) of a fetched upstream document (``v3/apis__apps__v1_openapi.json``)."""
    base = openapi_spec.spec_dir()
    if base is None:
        return None
    path = base / relative
    with _cache_lock:
        hit = _cache.get(path)
        if hit is None:
            if not path.is_file():
                return None
            data = path.read_bytes()
            hit = _cache[path] = (data, hashlib.sha512(data).hexdigest().upper())
        return hit


_gv_cache: dict[tuple[Path, str, str], tuple[bytes, str] | None] = {}


def _upstream_v3(group: str, version: str) -> tuple[bytes, str] | None:
    base = openapi_spec.spec_dir()
    if base is None:
        return None
    key = (base, group, version)
    with _cache_lock:
        if key in _gv_cache:
            return _gv_cache[key]
    p = _gv_path(group, version)
    raw = upstream(f"v3/{p.replace('/', '__')}_openapi.json")
    served = raw
    if raw is not None:
        doc = json.loads(raw[0])
        if _add_patch_probes(doc, group, version):
            data = json.dumps(doc, separators=(",", ":")).encode()
            served = (data, hashlib.sha512(data).hexdigest().upper())
    with _cache_lock:
        _gv_cache[key] = served
    return served


def _add_patch_probes(doc: dict[str, Any], group: str, version: str) -> bool:
    """Give create-only kinds (the access reviews) a PATCH operation that lists fieldValidation.

    ``kubectl create -f`` first asks whether the server validates fields: cli-runtime's
    ``queryParamVerifierV3`` looks for a PATCH operation of the kind in the v3 document. A
    real server has none for a review, so kubectl falls back to the OpenAPI v2 document, in
    protobuf, which kubesim does not serve; this probe (marked ``x-kubesim``) makes kubectl
    use server-side validation instead. A PATCH itself still gets 405.
    """
    paths = doc.setdefault("paths", {})
    patched = {
        json.dumps(op.get("x-kubernetes-group-version-kind"), sort_keys=True)
        for item in paths.values()
        if isinstance(item, dict)
        for op in [item.get("patch")]
        if isinstance(op, dict)
    }
    changed = False
    for t in BY_GV.get((group, version), {}).values():
        gvk = {"group": group, "kind": t.kind, "version": version}
        if json.dumps(gvk, sort_keys=True) in patched:
            continue
        base = "/" + _gv_path(group, version) + "/" + t.plural
        item = paths.setdefault(base, {})
        item["patch"] = {
            "x-kubesim": "probe for kubectl's fieldValidation check; the API answers 405",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
            ],
            "responses": {"405": {"description": "MethodNotAllowed"}},
        }
        changed = True
    return changed


def root() -> dict[str, Any]:
    paths = {}
    for group, version in BY_GV:
        p = _gv_path(group, version)
        served = _upstream_v3(group, version)
        digest = served[1] if served else hashlib.sha256(p.encode()).hexdigest()[:32].upper()
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
    return {"paths": paths}


def group_version_bytes(group: str, version: str) -> tuple[bytes, str] | None:
    """The fetched upstream v3 document of a served group-version, with its hash."""
    if (group, version) not in BY_GV:
        return None
    return _upstream_v3(group, version)


def v2_bytes() -> bytes | None:
    hit = upstream("swagger.json")
    return hit[0] if hit else None


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
