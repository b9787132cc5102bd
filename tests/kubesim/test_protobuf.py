"""kubesim/protobuf.py and protobuf_schema.py: wire bytes <-> JSON dicts, and the fetch step.

The messages here are built with the protobuf library's own classes for the compiled upstream
schema (``make install`` compiles it), not with kubesim's encoder, so a decoding test does not
check kubesim against itself.
"""

from __future__ import annotations

import base64
import re
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubesim import KubeSim, protobuf, protobuf_schema
from kubesim.errors import ApiError

from .support import site_deployment

REPO = Path(__file__).resolve().parents[2]
CORE = "k8s.io.api.core.v1"
APPS = "k8s.io.api.apps.v1"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"


@pytest.fixture(scope="module")
def schema() -> protobuf.Schema:
    if protobuf_schema.schema_dir() is None:
        pytest.fail("no compiled schema: `make install` runs `python -m kubesim fetch-protobuf`")
    return protobuf.load_schema()


def new(schema: protobuf.Schema, name: str) -> Any:
    return schema.message_class(name)()


def envelope(schema: protobuf.Schema, api_version: str, kind: str, message: Any) -> bytes:
    unknown = new(schema, "k8s.io.apimachinery.pkg.runtime.Unknown")
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = message.SerializeToString()
    return b"k8s\x00" + unknown.SerializeToString()


# -- the fetch step ---------------------------------------------------------------------------
def test_pins_are_realclusters_go_sum() -> None:
    go_sum = (REPO / "realcluster" / "go.sum").read_text()
    for module, h1 in protobuf_schema.MODULE_SUMS.items():
        assert f"{module} {protobuf_schema.VERSION} {h1}\n" in go_sum
    go_mod = (REPO / "realcluster" / "go.mod").read_text()
    assert re.search(rf"k8s\.io/api => k8s\.io/api {protobuf_schema.VERSION}\n", go_mod)


def test_go_struct_tags_give_json_names_pointers_omission_and_inlining() -> None:
    source = """
type Probe struct {
	ProbeHandler `json:",inline" protobuf:"bytes,1,opt,name=handler"`
	// +optional
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty" protobuf:"varint,2,opt,name=initialDelaySeconds"`
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty" protobuf:"varint,7,opt,name=terminationGracePeriodSeconds"`
	Port int32 `json:"port" protobuf:"varint,3,opt,name=port"`
	CreationTimestamp Time `json:"creationTimestamp,omitempty,omitzero" protobuf:"bytes,8,opt,name=creationTimestamp"`
	NotOnTheWire string `json:"notOnTheWire"`
}
"""  # noqa: E501 - Go source as upstream writes it
    assert protobuf_schema.go_struct_fields(source) == {
        "Probe": {
            "1": ["handler", False, 0, True],
            "2": ["initialDelaySeconds", False, 1, False],
            "7": ["terminationGracePeriodSeconds", True, 1, False],
            "3": ["port", False, 0, False],
            "8": ["creationTimestamp", False, 2, False],
        }
    }


def test_build_checks_each_modules_hash(tmp_path: Path) -> None:
    fake = tmp_path / "api.zip"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(f"k8s.io/api@{protobuf_schema.VERSION}/go.mod", "module k8s.io/api\n")
    dest = tmp_path / "schema"
    with pytest.raises(ValueError, match=r"k8s\.io/api@v0\.37\.2 zip hash mismatch"):
        protobuf_schema.build({"k8s.io/api": fake}, dest)
    assert not dest.exists()


def test_needed_packages_cover_every_served_group() -> None:
    packages = protobuf_schema.needed_packages()
    for pkg in ("core/v1", "apps/v1", "networking/v1", "authorization/v1", "autoscaling/v1"):
        assert f"k8s.io/api/{pkg}" in packages
    assert protobuf_schema.api_package("discovery.k8s.io", "v1") == "k8s.io/api/discovery/v1"


def test_without_the_schema_a_protobuf_body_is_a_415_saying_how_to_fetch(
    kubesim: KubeSim, kube_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(protobuf_schema.ENV, str(tmp_path / "nothing-here"))
    with httpx.Client(base_url=kubesim.url, timeout=10) as http:
        r = http.post(
            f"/api/v1/namespaces/{kube_namespace}/configmaps",
            content=b"k8s\x00\n\x0e\n\x02v1\x12\x08ConfigMap",
            headers={"Content-Type": protobuf.MEDIA_TYPE},
        )
    assert r.status_code == 415
    body = r.json()
    assert body["reason"] == "UnsupportedMediaType"
    assert "python -m kubesim fetch-protobuf" in body["message"]
    assert "make install" in body["message"]


# -- wire -> JSON -----------------------------------------------------------------------------
def test_deployment_pointer_zeros_stay_and_value_zeros_go(schema: protobuf.Schema) -> None:
    d = new(schema, f"{APPS}.Deployment")
    d.metadata.name = "web"
    d.metadata.namespace = ""  # Go writes every non-pointer string, empty or not
    d.metadata.generation = 0
    d.metadata.labels["app"] = "web"
    d.metadata.creationTimestamp.SetInParent()  # the zero time: an empty message
    d.spec.replicas = 0  # *int32: an explicit zero
    d.spec.paused = False  # bool, omitempty: dropped
    d.spec.minReadySeconds = 0
    d.spec.selector.matchLabels["app"] = "web"
    d.spec.template.metadata.creationTimestamp.SetInParent()
    c = d.spec.template.spec.containers.add()
    c.name, c.image, c.terminationMessagePath = "nginx", "nginx:1.27", ""
    probe = c.readinessProbe
    probe.handler.httpGet.path = "/"
    probe.handler.httpGet.port.type = 0
    probe.handler.httpGet.port.intVal = 80
    probe.periodSeconds = 5
    port = c.ports.add()
    port.containerPort, port.protocol = 8080, "TCP"
    c.resources.limits["cpu"].string = "100m"
    d.spec.strategy.rollingUpdate.maxSurge.type = 1
    d.spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    d.status.SetInParent()
    obj = protobuf.decode(envelope(schema, "apps/v1", "Deployment", d))
    assert obj == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "100m"}},
                            # ProbeHandler is embedded: its fields sit in the probe itself.
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 80},
                                "periodSeconds": 5,
                            },
                        }
                    ]
                },
            },
            "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
        },
        "status": {},
    }


def test_times_bytes_raw_json_named_slices_and_inlined_volumes(schema: protobuf.Schema) -> None:
    s = new(schema, f"{CORE}.Secret")
    s.metadata.name = "creds"
    s.metadata.creationTimestamp.seconds = 1764763200
    s.metadata.creationTimestamp.nanos = 123  # metav1.Time keeps whole seconds
    entry = s.metadata.managedFields.add()
    entry.manager, entry.operation = "kubectl-create", "Update"
    entry.time.seconds = 1764763200
    entry.fieldsV1.Raw = b'{"f:data":{".":{},"f:pw":{}}}'
    s.data["pw"] = b"\x00\xffs3cr3t"
    s.type = "Opaque"
    s.immutable = False  # *bool: kept
    assert protobuf.decode(envelope(schema, "v1", "Secret", s)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "creds",
            "creationTimestamp": "2025-12-03T12:00:00Z",
            "managedFields": [
                {
                    "manager": "kubectl-create",
                    "operation": "Update",
                    "time": "2025-12-03T12:00:00Z",
                    "fieldsV1": {"f:data": {".": {}, "f:pw": {}}},
                }
            ],
        },
        "data": {"pw": base64.b64encode(b"\x00\xffs3cr3t").decode()},
        "type": "Opaque",
        "immutable": False,
    }
    ev = new(schema, f"{CORE}.Event")
    ev.eventTime.seconds, ev.eventTime.nanos = 1764763200, 654321000
    assert protobuf.decode(envelope(schema, "v1", "Event", ev))["eventTime"] == (
        "2025-12-03T12:00:00.654321Z"
    )
    rev = new(schema, f"{APPS}.ControllerRevision")
    rev.data.raw = b'{"spec":{"replicas":2}}'
    rev.revision = 3
    assert protobuf.decode(envelope(schema, "apps/v1", "ControllerRevision", rev)) == {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "data": {"spec": {"replicas": 2}},
        "revision": 3,
    }
    sar = new(schema, "k8s.io.api.authorization.v1.SubjectAccessReview")
    sar.spec.extra["scopes"].items.extend(["a", "b"])  # type ExtraValue []string
    sar.spec.user = "jane"
    wire = envelope(schema, "authorization.k8s.io/v1", "SubjectAccessReview", sar)
    decoded = protobuf.decode(wire)
    assert decoded["spec"] == {"user": "jane", "extra": {"scopes": ["a", "b"]}}
    pod = new(schema, f"{CORE}.Pod")
    vol = pod.spec.volumes.add()
    vol.name = "conf"
    vol.volumeSource.configMap.localObjectReference.name = "settings"
    vol.volumeSource.configMap.defaultMode = 420
    c = pod.spec.containers.add()
    c.name = "app"
    assert protobuf.decode(envelope(schema, "v1", "Pod", pod))["spec"] == {
        "volumes": [{"name": "conf", "configMap": {"name": "settings", "defaultMode": 420}}],
        "containers": [{"name": "app"}],
    }


def test_a_list_without_items_has_an_empty_items_list(schema: protobuf.Schema) -> None:
    lst = new(schema, f"{APPS}.DeploymentList")
    lst.metadata.resourceVersion = "7"
    assert protobuf.decode(envelope(schema, "apps/v1", "DeploymentList", lst)) == {
        "apiVersion": "apps/v1",
        "kind": "DeploymentList",
        "metadata": {"resourceVersion": "7"},
        "items": [],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind":"ConfigMap"}', "not a Kubernetes protobuf message"),
        (b"k8s\x00\x0a\xff", "unable to decode protobuf body"),
    ],
)
def test_malformed_bodies_are_bad_requests(
    schema: protobuf.Schema, body: bytes, message: str
) -> None:
    with pytest.raises(ApiError) as err:
        protobuf.decode(body)
    assert err.value.code == 400 and message in err.value.message


def test_an_unregistered_kind_is_a_bad_request(schema: protobuf.Schema) -> None:
    cm = new(schema, f"{CORE}.ConfigMap")
    with pytest.raises(ApiError) as err:
        protobuf.decode(envelope(schema, "v1", "Gadget", cm))
    assert err.value.code == 400
    assert err.value.message == 'no kind "Gadget" is registered for version "v1" in scheme'


# -- JSON -> wire -----------------------------------------------------------------------------
def test_encode_then_decode_gives_the_object_back(schema: protobuf.Schema) -> None:
    d = site_deployment("shop", max_surge="25%")
    d["metadata"].update(
        {
            "namespace": "sites",
            "uid": "4b1e0c1e-0000-4000-8000-000000000001",
            "resourceVersion": "12",
            "generation": 2,
            "creationTimestamp": "2026-12-03T11:00:00Z",
            "annotations": {"kubernetes.io/change-cause": "upgrade"},
            "managedFields": [
                {
                    "manager": "subscribie-admin",
                    "operation": "Apply",
                    "apiVersion": "apps/v1",
                    "time": "2026-12-03T11:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                }
            ],
        }
    )
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "x"}}]
    d["status"] = {
        "observedGeneration": 2,
        "replicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": "2026-12-03T11:00:01Z",
                "lastTransitionTime": "2026-12-03T11:00:01Z",
                "reason": "MinimumReplicasAvailable",
                "message": "ok",
            }
        ],
    }
    wire = protobuf.encode(d)
    assert wire.startswith(b"k8s\x00")
    assert protobuf.decode(wire) == d
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": base64.b64encode(bytes(range(256))).decode()},
    }
    assert protobuf.decode(protobuf.encode(secret)) == secret


def test_go_duration_strings() -> None:
    cases = {0: "0s", 1_500_000_000: "1.5s", 3_723_000_000_000: "1h2m3s", 250_000_000: "250ms"}
    cases |= {-90_000_000_000: "-1m30s", 1_500: "1.5µs", 7: "7ns", 3_600_000_000_000: "1h0m0s"}
    assert {ns: protobuf.go_duration(ns) for ns in cases} == cases


@pytest.mark.parametrize(
    ("accept", "only"),
    [
        ("application/vnd.kubernetes.protobuf", True),
        ("application/vnd.kubernetes.protobuf;q=0.9", True),
        ("application/vnd.kubernetes.protobuf,application/json", False),  # kubectl's
        ("application/vnd.kubernetes.protobuf, */*", False),
        ("application/json", False),
    ],
)
def test_only_a_protobuf_only_accept_gets_protobuf(accept: str, only: bool) -> None:
    assert protobuf.accepts_only_protobuf(accept) is only
