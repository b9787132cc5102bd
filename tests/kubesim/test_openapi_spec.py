"""The upstream OpenAPI documents: the fetch step's checks, and kubesim serving them."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from kubesim import KubeSim, openapi_spec

from .kubectl_target import KUBECTL, Target

PREFIX = openapi_spec.SPEC_PREFIX


def _patch_op(kind: str, group: str = "apps") -> dict[str, object]:
    return {
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": "v1"},
        "parameters": [{"name": "fieldValidation", "in": "query"}],
    }


APPS_DOC = {
    "openapi": "3.0.0",
    "info": {"title": "Kubernetes", "version": "unversioned"},
    "paths": {
        f"/apis/apps/v1/namespaces/{{namespace}}/{plural}/{{name}}": {"patch": _patch_op(kind)}
        for kind, plural in (
            ("Deployment", "deployments"),
            ("ReplicaSet", "replicasets"),
            ("DaemonSet", "daemonsets"),
            ("StatefulSet", "statefulsets"),
        )
    },
    "components": {
        "schemas": {
            "io.k8s.api.apps.v1.Deployment": {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "apps", "kind": "Deployment", "version": "v1"}
                ],
            }
        }
    },
}
# A create-only kind: upstream has a POST and no PATCH for it.
AUTHZ_DOC = {
    "openapi": "3.0.0",
    "paths": {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": {
            "post": {"x-kubernetes-action": "post"}
        }
    },
}


def module_zip(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    path = tmp_path / "module.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            f"{openapi_spec.MODULE}@{openapi_spec.VERSION}/go.mod", "module k8s.io/kubernetes\n"
        )
        zf.writestr(f"{PREFIX}swagger.json", json.dumps({"swagger": "2.0"}))
        zf.writestr(f"{PREFIX}v3/apis__apps__v1_openapi.json", json.dumps(APPS_DOC))
        zf.writestr(
            f"{PREFIX}v3/apis__authorization.k8s.io__v1_openapi.json", json.dumps(AUTHZ_DOC)
        )
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return path


def test_module_zip_hash_is_go_sums_h1(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("m@v1/b.txt", "b")
        zf.writestr("m@v1/a.txt", "a")
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in (("m@v1/a.txt", b"a"), ("m@v1/b.txt", b"b"))
    )
    want = "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()
    assert openapi_spec.module_zip_hash(path) == want


def test_extract_checks_the_hash_and_keeps_only_the_spec(tmp_path: Path) -> None:
    path = module_zip(tmp_path)
    dest = tmp_path / "cache" / "spec"
    with pytest.raises(ValueError, match="hash mismatch"):
        openapi_spec.extract_spec(path, dest, "h1:not-it")
    assert not dest.exists()
    openapi_spec.extract_spec(path, dest, openapi_spec.module_zip_hash(path))
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "swagger.json",
        "v3/apis__apps__v1_openapi.json",
        "v3/apis__authorization.k8s.io__v1_openapi.json",
    ]
    evil = module_zip(tmp_path, {f"{PREFIX}../../escape.txt": "x"})
    with pytest.raises(ValueError, match="unsafe path"):
        openapi_spec.extract_spec(evil, tmp_path / "other", openapi_spec.module_zip_hash(evil))


def test_kubesim_serves_the_fetched_documents(
    kubesim: KubeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = module_zip(tmp_path)
    spec = openapi_spec.extract_spec(path, tmp_path / "spec", openapi_spec.module_zip_hash(path))
    monkeypatch.setenv(openapi_spec.ENV, str(spec))
    raw = (spec / "v3" / "apis__apps__v1_openapi.json").read_bytes()
    digest = hashlib.sha512(raw).hexdigest().upper()
    with httpx.Client(base_url=kubesim.url, timeout=10) as http:
        root = http.get("/openapi/v3").json()["paths"]
        url = root["apis/apps/v1"]["serverRelativeURL"]
        assert url == f"/openapi/v3/apis/apps/v1?hash={digest}"
        r = http.get(url)
        assert r.status_code == 200 and r.content == raw
        assert r.headers["etag"] == f'"{digest}"'
        assert r.headers["cache-control"] == "public, immutable"
        assert http.get("/openapi/v3/apis/apps/v1").headers["cache-control"] == "no-cache, private"
        # kubectl's fieldValidation probe finds a PATCH operation for each create-only kind.
        authz = http.get(root["apis/authorization.k8s.io/v1"]["serverRelativeURL"]).json()
        paths = authz["paths"]
        assert "post" in paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
        probe = paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]["patch"]
        assert probe["x-kubernetes-group-version-kind"]["kind"] == "SelfSubjectAccessReview"
        assert probe["parameters"][0]["name"] == "fieldValidation" and "x-kubesim" in probe
        # A group-version with no fetched document keeps kubesim's schemaless one.
        core = http.get(root["api/v1"]["serverRelativeURL"]).json()
        assert core["components"]["schemas"] == {} and core["paths"]
        assert http.get("/openapi/v2", headers={"Accept": "application/json"}).json() == {
            "swagger": "2.0"
        }
        protobuf_only = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
        assert http.get("/openapi/v2", headers=protobuf_only).status_code == 404
    monkeypatch.setenv(openapi_spec.ENV, str(tmp_path / "nothing-here"))
    with httpx.Client(base_url=kubesim.url, timeout=10) as http:
        assert http.get("/openapi/v3/apis/apps/v1").json()["components"]["schemas"] == {}
        assert http.get("/openapi/v2").status_code == 404


@pytest.mark.contract
@pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")
def test_kubectl_explain(target: Target) -> None:
    if target.sim is not None and openapi_spec.spec_dir() is None:
        pytest.skip("run `python -m kubesim fetch-openapi` first (kubectl explain needs schemas)")
    out = target.kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in out and "FIELD: replicas <integer>" in out
    nodes = target.kubectl("explain", "nodes.status.allocatable").stdout
    assert "Allocatable represents the resources of a node" in nodes
