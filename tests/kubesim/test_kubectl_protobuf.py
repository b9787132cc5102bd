"""kubectl's generator commands, which send protobuf bodies, on kubesim and a real cluster.

``kubectl create deployment|namespace|secret|configmap|service|ingress|job|cronjob|
serviceaccount``, ``kubectl run``, ``kubectl expose`` and ``kubectl auth can-i`` POST
``application/vnd.kubernetes.protobuf`` (kubesim/protobuf.py decodes it). Each test checks what
was stored, field by field, and the ``--dry-run=server`` variant stores nothing.

Contract mode (``KUBESIM_CONTRACT_KUBECONFIG``): every test also runs on that real cluster.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from .kubectl_target import KUBECTL, Target

pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]

DRY_RUN = ["", "--dry-run=server"]


def get_json(t: Target, *args: str) -> Any:
    return json.loads(t.kubectl("get", *args, "-o", "json", "--show-managed-fields").stdout)


def created(t: Target, kind: str, name: str, dry_run: str, *command: str) -> dict[str, Any]:
    """Run a generator command; return the object as stored (or as dry-run answered)."""
    if not dry_run:
        t.kubectl(*command)
        return get_json(t, kind, name)
    flags = [dry_run, "-o", "json", "--show-managed-fields"]
    cut = command.index("--") if "--" in command else len(command)  # flags before a command
    answer = json.loads(t.kubectl(*command[:cut], *flags, *command[cut:]).stdout)
    missing = t.kubectl("get", kind, name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, "dry run stored it"
    return answer


def managers(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["manager"], f["operation"]) for f in obj["metadata"].get("managedFields") or []}


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_deployment(target: Target, dry_run: str) -> None:
    d = created(
        target,
        "deployment",
        "web",
        dry_run,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=3",
        "--port=8080",
    )
    assert d["metadata"]["labels"] == {"app": "web"}
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert ("kubectl-create", "Update") in managers(d)
    (container,) = d["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "nginx" and container["image"] == "nginx:1.27"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    # Server defaults applied to the decoded body, as to a JSON one.
    assert d["spec"]["progressDeadlineSeconds"] == 600
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert "creationTimestamp" not in d["spec"]["template"]["metadata"]
    if not dry_run:
        target.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert get_json(target, "deployment", "web")["status"]["readyReplicas"] == 3


def test_create_deployment_with_zero_replicas_keeps_the_zero(target: Target) -> None:
    # replicas is a pointer: a zero on the wire is an explicit 0, not "unset, default to 1".
    target.kubectl("create", "deployment", "idle", "--image=nginx", "--replicas=0")
    d = get_json(target, "deployment", "idle")
    assert d["spec"]["replicas"] == 0
    assert d["spec"]["template"]["spec"]["containers"][0].get("ports") is None


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_namespace(target: Target, dry_run: str) -> None:
    name = f"pb-ns-{uuid.uuid4().hex[:8]}"
    try:
        ns = created(target, "namespace", name, dry_run, "create", "namespace", name)
        assert ns["metadata"]["name"] == name
        assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}
        assert ns["spec"] == {"finalizers": ["kubernetes"]}
        if not dry_run:
            assert ns["status"] == {"phase": "Active"}
    finally:
        target.kubectl("delete", "namespace", name, "--wait=false", check=False)


BINARY = bytes(range(256))


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_secret_generic(target: Target, dry_run: str, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(BINARY)
    s = created(
        target,
        "secret",
        "creds",
        dry_run,
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=password=p@ss w0rd:é",
        f"--from-file=blob={blob}",
    )
    assert s["type"] == "Opaque"
    data = {k: base64.b64decode(v) for k, v in s["data"].items()}
    assert data == {"user": b"admin", "password": "p@ss w0rd:é".encode(), "blob": BINARY}
    assert "stringData" not in s and managers(s) == {("kubectl-create", "Update")}


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_configmap(target: Target, dry_run: str, tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("listen 80;\n")
    (tmp_path / "logo.bin").write_bytes(BINARY)
    cm = created(
        target,
        "configmap",
        "settings",
        dry_run,
        "create",
        "configmap",
        "settings",
        "--from-literal=theme=dark",
        "--from-literal=empty=",
        f"--from-file={tmp_path / 'app.conf'}",
        f"--from-file={tmp_path / 'logo.bin'}",
    )
    assert cm["data"] == {"theme": "dark", "empty": "", "app.conf": "listen 80;\n"}
    assert cm["binaryData"] == {"logo.bin": base64.b64encode(BINARY).decode()}


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_service_clusterip(target: Target, dry_run: str) -> None:
    svc = created(
        target,
        "service",
        "shop",
        dry_run,
        "create",
        "service",
        "clusterip",
        "shop",
        "--tcp=80:8080",
        "--tcp=443:8443",
    )
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"app": "shop"}
    assert svc["metadata"]["labels"] == {"app": "shop"}
    ports = [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]]
    assert ports == [
        ("80-8080", 80, 8080, "TCP"),
        ("443-8443", 443, 8443, "TCP"),
    ]
    assert svc["spec"]["clusterIP"] and svc["spec"]["clusterIPs"] == [svc["spec"]["clusterIP"]]
    assert svc["spec"]["ipFamilies"] == ["IPv4"] and svc["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert svc["spec"]["internalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["sessionAffinity"] == "None"


def test_create_service_headless_externalname_nodeport_loadbalancer(target: Target) -> None:
    target.kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
    headless = get_json(target, "service", "headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    target.kubectl("create", "service", "externalname", "ext", "--external-name=shop.example.com")
    ext = get_json(target, "service", "ext")
    assert ext["spec"]["type"] == "ExternalName"
    assert ext["spec"]["externalName"] == "shop.example.com"
    assert "clusterIP" not in ext["spec"] and "ipFamilies" not in ext["spec"]
    target.kubectl("create", "service", "nodeport", "np", "--tcp=80:8080")
    target.kubectl("create", "service", "loadbalancer", "lb", "--tcp=443:8443")
    for name in ("np", "lb"):
        spec = get_json(target, "service", name)["spec"]
        assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
        assert spec["externalTrafficPolicy"] == "Cluster"
    assert get_json(target, "service", "lb")["spec"]["allocateLoadBalancerNodePorts"] is True


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_ingress(target: Target, dry_run: str) -> None:
    ing = created(
        target,
        "ingress",
        "shop",
        dry_run,
        "create",
        "ingress",
        "shop",
        "--class=nginx",
        "--rule=shop.example.com/=shop:80",
        "--rule=shop.example.com/api*=api:http,tls=shop-tls",
        "--annotation=nginx.ingress.kubernetes.io/ssl-redirect=true",
    )
    spec = ing["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert ing["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}
    (rule,) = spec["rules"]
    assert rule["host"] == "shop.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Exact",
            "backend": {"service": {"name": "shop", "port": {"number": 80}}},
        },
        {
            "path": "/api",
            "pathType": "Prefix",
            "backend": {"service": {"name": "api", "port": {"name": "http"}}},
        },
    ]
    assert spec["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]


def test_expose_deployment(target: Target) -> None:
    target.kubectl("create", "deployment", "web", "--image=nginx", "--port=8080")
    target.kubectl(
        "expose", "deployment", "web", "--port=80", "--target-port=8080", "--name=web-svc"
    )
    svc = get_json(target, "service", "web-svc")
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["metadata"]["labels"] == {"app": "web"}
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 8080}]
    dry = json.loads(
        target.kubectl(
            "expose", "deployment", "web", "--port=81", "--name=dry-svc", "--dry-run=server",
            "-o", "json",
        ).stdout
    )  # fmt: skip
    assert dry["spec"]["ports"][0]["port"] == 81 and dry["spec"]["clusterIP"]
    assert target.kubectl("get", "service", "dry-svc", check=False).returncode != 0


@pytest.mark.parametrize("dry_run", DRY_RUN)
def test_create_job_cronjob_and_serviceaccount(target: Target, dry_run: str) -> None:
    job = created(
        target, "job", "once", dry_run, "create", "job", "once", "--image=busybox", "--",
        "echo", "hi",
    )  # fmt: skip
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "busybox" and container["command"] == ["echo", "hi"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    cron = created(
        target, "cronjob", "nightly", dry_run, "create", "cronjob", "nightly",
        "--image=busybox", "--schedule=0 3 * * *", "--", "date",
    )  # fmt: skip
    assert cron["spec"]["schedule"] == "0 3 * * *"
    template = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert template["containers"][0]["command"] == ["date"]
    assert template["restartPolicy"] == "OnFailure"
    sa = created(target, "serviceaccount", "robot", dry_run, "create", "serviceaccount", "robot")
    assert sa["metadata"]["name"] == "robot"


def test_run_pod(target: Target) -> None:
    target.kubectl(
        "run", "one", "--image=nginx:1.27", "--labels=tier=web,app=one", "--port=80",
        "--env=MODE=prod", "--restart=Never",
    )  # fmt: skip
    pod = get_json(target, "pod", "one")
    assert pod["metadata"]["labels"] == {"tier": "web", "app": "one"}
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "nginx:1.27"
    assert container["env"] == [{"name": "MODE", "value": "prod"}]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_create_token_and_auth_whoami(target: Target) -> None:
    # TokenRequest (serviceaccounts/default/token) and SelfSubjectReview, posted as protobuf.
    token = target.kubectl("create", "token", "default", "--duration=10m").stdout.strip()
    _header, claims, _signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["sub"] == f"system:serviceaccount:{target.namespace}:default"
    assert payload["kubernetes.io"]["serviceaccount"]["name"] == "default"
    assert payload["exp"] - payload["iat"] == 600
    missing = target.kubectl("create", "token", "nobody", check=False)
    assert missing.returncode != 0 and 'serviceaccounts "nobody" not found' in missing.stderr
    who = target.kubectl("auth", "whoami", "-o", "json").stdout
    review = json.loads(who)
    assert review["kind"] == "SelfSubjectReview" and review["status"]["userInfo"]["username"]
    assert "system:authenticated" in review["status"]["userInfo"]["groups"]


def test_auth_can_i(target: Target) -> None:
    # SelfSubjectAccessReview and SelfSubjectRulesReview, both posted as protobuf.
    assert target.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert target.kubectl("auth", "can-i", "get", "pods", "--subresource=log").stdout == "yes\n"
    listed = target.kubectl("auth", "can-i", "--list").stdout
    assert listed.splitlines()[0].split() == [
        "Resources",
        "Non-Resource",
        "URLs",
        "Resource",
        "Names",
        "Verbs",
    ]
    assert any(line.split()[:1] == ["*.*"] for line in listed.splitlines())
