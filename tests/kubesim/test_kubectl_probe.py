"""The probe: 97 everyday kubectl commands, with the same outcome on kubesim and a real one.

Each case runs in a fresh namespace holding what a user's namespace usually holds (a rolled
out two-replica Deployment ``web`` made by ``kubectl create deployment``, its Service, a
ConfigMap and a Secret), then runs its commands; the last one's exit status and key output are
the outcome, and every command before it must succeed. With ``KUBESIM_CONTRACT_KUBECONFIG``
(``make test-real``) the same cases run on the real control plane, so one expectation holding
on both is the fidelity measure. Left out: what needs a container runtime (``logs``, ``exec``,
``attach``, ``cp``, ``port-forward`` content; kubesim's answers to those are tested in
test_kubectl_cluster.py) and what changes the shared node (``cordon``, ``taint``, ``drain``).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from .kubectl_target import KUBECTL, Target

pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]


@dataclass(frozen=True)
class Probe:
    """``commands`` (``{pod}``, ``{node}``, ``{ns}`` filled in); the last one is judged."""

    commands: tuple[str, ...]
    ok: bool = True
    expect: tuple[str, ...] = ()  # regexes, searched in stdout + stderr
    stdin: str | None = None


def probe(*commands: str, ok: bool = True, expect: tuple[str, ...] | str = (), stdin=None):
    return Probe(commands, ok, (expect,) if isinstance(expect, str) else expect, stdin)


CM = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}})
CHANGED_CM = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"a": "2"},
    }
)
APPLIED = json.dumps(
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}}
)
ROLLED = (
    "set image deployment/web nginx=nginx:1.28",
    "rollout status deployment/web --timeout=60s",
)

PROBES: dict[str, Probe] = {
    # -- reading
    "get-all": probe(
        "get all", expect=("deployment.apps/web", "replicaset.apps/web-", "service/web", "pod/web-")
    ),
    "get-deployments": probe(
        "get deployments",
        expect=(r"NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE", r"web\s+2/2\s+2\s+2"),
    ),
    "get-deployment-wide": probe(
        "get deployment web -o wide",
        expect=(r"CONTAINERS\s+IMAGES\s+SELECTOR", r"nginx\s+nginx:1\.27\s+app=web"),
    ),
    "get-pods": probe(
        "get pods",
        expect=(r"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE", r"web-\S+\s+1/1\s+Running\s+0"),
    ),
    "get-pods-by-label-names": probe(
        "get pods -l app=web -o name", expect=r"\Apod/web-\S+\npod/web-\S+\n\Z"
    ),
    "get-pods-field-selector": probe(
        "get pods --field-selector=status.phase=Running -o name", expect=r"\A(pod/web-\S+\n){2}\Z"
    ),
    "get-pods-jsonpath-phases": probe(
        "get pods -o jsonpath={.items[*].status.phase}", expect=r"\ARunning Running\Z"
    ),
    "get-pods-sorted": probe("get pods --sort-by=.metadata.name -o name", expect="pod/web-"),
    "get-replicasets": probe("get rs", expect=r"web-\w+\s+2\s+2\s+2\s"),
    "get-service": probe(
        "get svc web", expect=r"web\s+ClusterIP\s+\d+\.\d+\.\d+\.\d+\s+<none>\s+80/TCP"
    ),
    "get-endpoints": probe(
        "get endpoints web",
        expect=("Warning: v1 Endpoints is deprecated", r"web\s+[\d.]+:80,[\d.]+:80"),
    ),
    "get-endpointslices": probe(
        "get endpointslices", expect=r"web-\w+\s+IPv4\s+80\s+[\d.]+,[\d.]+"
    ),
    "get-configmaps": probe("get cm", expect=("kube-root-ca.crt", r"settings\s+1\s")),
    "get-secrets": probe("get secrets", expect=r"creds\s+Opaque\s+1\s"),
    "get-serviceaccounts": probe("get sa", expect=r"NAME\s+AGE\ndefault\s+\d+s\n"),
    "get-events": probe("get events", expect=("ScalingReplicaSet", "Scaled up replica set web-")),
    "get-nodes": probe("get nodes", expect=r"NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION"),
    "get-namespace": probe("get ns {ns}", expect=r"{ns}\s+Active"),
    "status-terminating-replicas": probe(
        "get deploy,rs -l app=web -o jsonpath={.items[*].status.terminatingReplicas}",
        expect=r"\A0 0\Z",
    ),
    "get-yaml": probe(
        "get deployment web -o yaml",
        expect=("apiVersion: apps/v1", "kind: Deployment", "replicas: 2"),
    ),
    "get-jsonpath": probe("get deployment web -o jsonpath={.spec.replicas}", expect=r"\A2\Z"),
    "get-go-template": probe(
        "get deployment web -o go-template={{.metadata.name}}", expect=r"\Aweb\Z"
    ),
    "get-custom-columns": probe(
        "get deploy -o "
        "custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[0].image",
        expect=r"web\s+nginx:1\.27",
    ),
    "get-show-labels": probe("get deploy --show-labels", expect=r"web\s.*app=web"),
    "get-all-namespaces": probe("get deploy -A", expect=(r"NAMESPACE\s+NAME", r"{ns}\s+web\s")),
    "get-several-kinds": probe(
        "get deploy,svc -l app=web -o name", expect=r"\Adeployment\.apps/web\nservice/web\n\Z"
    ),
    "get-missing": probe(
        "get deploy missing",
        ok=False,
        expect=r'Error from server \(NotFound\): deployments\.apps "missing" not found',
    ),
    "get-raw-readyz": probe("get --raw /readyz", expect=r"\Aok"),
    "get-raw-discovery": probe("get --raw /apis/apps/v1", expect='"kind":"APIResourceList"'),
    "describe-deployment": probe(
        "describe deployment web",
        expect=(
            r"Replicas:\s+2 desired \| 2 updated \| 2 total \| 2 available \| 0 unavailable",
            r"StrategyType:\s+RollingUpdate",
            r"Normal\s+ScalingReplicaSet",
        ),
    ),
    "describe-pod": probe(
        "describe pod {pod}", expect=(r"Node:\s+{node}/", r"Status:\s+Running", r"nginx:")
    ),
    "describe-service": probe(
        "describe svc web", expect=(r"Type:\s+ClusterIP", r"Endpoints:\s+[\d.]+:80,[\d.]+:80")
    ),
    "describe-node": probe(
        "describe node {node}", expect=(r"Conditions:", r"Ready\s+True", r"Capacity:")
    ),
    "describe-namespace": probe("describe ns {ns}", expect=r"Status:\s+Active"),
    "describe-configmap": probe("describe configmap settings", expect=(r"Data\n====", r"a:")),
    "describe-secret": probe("describe secret creds", expect=(r"Type:\s+Opaque", r"pw:\s+1 bytes")),
    "events-for": probe("events --for deployment/web", expect="ScalingReplicaSet"),
    # -- creating (kubectl's generators send protobuf)
    "create-deployment": probe(
        "create deployment api --image=nginx", expect=r"\Adeployment\.apps/api created\n\Z"
    ),
    "create-deployment-dry-run": probe(
        "create deployment api --image=nginx --dry-run=server",
        expect=r"deployment\.apps/api created \(server dry run\)",
    ),
    "create-deployment-exists": probe(
        "create deployment web --image=nginx",
        ok=False,
        expect=r'deployments\.apps "web" already exists',
    ),
    "create-secret-generic": probe(
        "create secret generic s2 --from-literal=a=b", expect=r"secret/s2 created"
    ),
    "create-secret-docker-registry": probe(
        "create secret docker-registry reg --docker-server=r.io --docker-username=u "
        "--docker-password=p",
        "describe secret reg",
        expect=(r"Type:\s+kubernetes\.io/dockerconfigjson", r"\.dockerconfigjson:\s+\d+ bytes"),
    ),
    "create-configmap-dry-run": probe(
        "create configmap c2 --from-literal=a=b --dry-run=server",
        expect=r"configmap/c2 created \(server dry run\)",
    ),
    "create-service-clusterip": probe(
        "create service clusterip svc2 --tcp=80:8080", expect="service/svc2 created"
    ),
    "create-service-nodeport": probe(
        "create service nodeport np --tcp=80:8080",
        "get svc np -o 'jsonpath={.spec.type} {.spec.ports[0].nodePort}'",
        expect=r"\ANodePort 3\d{4}\Z",
    ),
    "create-ingress": probe(
        "create ingress ing --rule=a.example.com/=web:80",
        expect=r"ingress\.networking\.k8s\.io/ing created",
    ),
    "create-job": probe("create job once --image=busybox -- true", expect="job.batch/once created"),
    "create-cronjob": probe(
        "create cronjob nightly --image=busybox '--schedule=0 3 * * *'",
        expect=r"cronjob\.batch/nightly created",
    ),
    "create-serviceaccount": probe(
        "create serviceaccount robot", expect=r"serviceaccount/robot created"
    ),
    "create-token": probe("create token default", expect=r"\AeyJ[\w-]+\.[\w-]+\.[\w-]*\n?\Z"),
    "create-role-and-rolebinding": probe(
        "create role reader --verb=get,list --resource=pods,deployments.apps",
        "create rolebinding reader --role=reader --user=jane --serviceaccount={ns}:default",
        "get role reader -o jsonpath={.rules[*].resources}",
        expect=r'\A\["pods"\] \["deployments"\]\Z',
    ),
    "create-pdb": probe(
        "create pdb web --selector=app=web --min-available=1",
        "get pdb web -o jsonpath={.spec.minAvailable}",
        expect=r"\A1\Z",
    ),
    "run-pod": probe("run tmp --image=busybox --restart=Never", expect=r"pod/tmp created"),
    "expose": probe(
        "expose deployment web --port=8080 --name=web2",
        "get svc web2 -o 'jsonpath={.spec.ports[0].port} {.spec.selector.app}'",
        expect=r"\A8080 web\Z",
    ),
    # -- changing
    "scale": probe(
        "scale deployment web --replicas=3",
        "rollout status deployment/web --timeout=60s",
        "get deploy web -o jsonpath={.status.readyReplicas}",
        expect=r"\A3\Z",
    ),
    "scale-missing": probe(
        "scale deployment missing --replicas=1",
        ok=False,
        expect=r'deployments\.apps "missing" not found',
    ),
    "set-image": probe(
        "set image deployment/web nginx=nginx:1.28", expect=r"deployment\.apps/web image updated"
    ),
    "rollout-status": probe(*ROLLED, expect=r'deployment "web" successfully rolled out'),
    "rollout-status-missing": probe(
        "rollout status deployment/missing",
        ok=False,
        expect=r'deployments\.apps "missing" not found',
    ),
    "rollout-history": probe(
        *ROLLED,
        "rollout history deployment/web",
        expect=(r"REVISION\s+CHANGE-CAUSE", r"\n1\s+<none>", r"\n2\s+<none>"),
    ),
    "rollout-history-revision": probe(
        *ROLLED,
        "rollout history deployment/web --revision=1",
        expect=(r"revision #1", r"Image:\s+nginx:1\.27"),
    ),
    "rollout-undo": probe(
        *ROLLED,
        "rollout undo deployment/web",
        "rollout status deployment/web --timeout=60s",
        "get deploy web -o jsonpath={.spec.template.spec.containers[0].image}",
        expect=r"\Anginx:1\.27\Z",
    ),
    "rollout-undo-without-history": probe(
        "rollout undo deployment/web", ok=False, expect="no rollout history found"
    ),
    "rollout-restart": probe(
        "rollout restart deployment/web",
        "rollout status deployment/web --timeout=60s",
        "get deploy web -o jsonpath={.spec.template.metadata.annotations}",
        expect="kubectl.kubernetes.io/restartedAt",
    ),
    "rollout-pause-resume": probe(
        "rollout pause deployment/web",
        "rollout resume deployment/web",
        expect=r"deployment\.apps/web resumed",
    ),
    "rollout-pause-twice": probe(
        "rollout pause deployment/web",
        "rollout pause deployment/web",
        ok=False,
        expect="already paused",
    ),
    "label": probe("label deployment web tier=gold", expect=r"deployment\.apps/web labeled"),
    "label-conflict": probe(
        "label deployment web app=other",
        ok=False,
        expect=r"'app' already has a value \(web\), and --overwrite is false",
    ),
    "label-remove": probe(
        "label deployment web tier=gold",
        "label deployment web tier-",
        "get deploy web -o jsonpath={.metadata.labels}",
        expect=r'\A\{"app":"web"\}\Z',
    ),
    "label-pods-by-selector": probe(
        "label pods -l app=web role=fe", expect=r"\A(pod/web-\S+ labeled\n){2}\Z"
    ),
    "annotate": probe("annotate deployment web note=x", expect=r"deployment\.apps/web annotated"),
    "patch-strategic": probe(
        """patch deployment web -p '{"spec":{"replicas":1}}'""",
        expect=r"deployment\.apps/web patched\n",
    ),
    "patch-no-change": probe(
        """patch deployment web -p '{"spec":{"replicas":2}}'""",
        expect=r"deployment\.apps/web patched \(no change\)",
    ),
    "patch-json": probe(
        "patch deployment web --type=json -p "
        """'[{"op":"replace","path":"/spec/replicas","value":1}]'""",
        expect=r"deployment\.apps/web patched",
    ),
    "patch-json-bad-path": probe(
        "patch deployment web --type=json -p "
        """'[{"op":"replace","path":"/spec/nope/x","value":1}]'""",
        ok=False,
        # The real server's generic 422 for any unappliable JSON patch (details empty).
        expect="The request is invalid: the server rejected our request due to an error",
    ),
    "patch-merge": probe(
        """patch deployment web --type=merge -p '{"metadata":{"labels":{"x":"y"}}}'""",
        expect=r"deployment\.apps/web patched",
    ),
    "set-env": probe(
        "set env deployment/web MODE=prod",
        "get deploy web -o jsonpath={.spec.template.spec.containers[0].env}",
        expect=r'\A\[\{"name":"MODE","value":"prod"\}\]\Z',
    ),
    "set-resources": probe(
        "set resources deployment web --limits=cpu=200m",
        expect=r"deployment\.apps/web resource requirements updated",
    ),
    "autoscale": probe(
        "autoscale deployment web --min=2 --max=4 --cpu=80%",
        "get hpa web -o 'jsonpath={.spec.minReplicas} {.spec.maxReplicas}'",
        expect=r"\A2 4\Z",
    ),
    "wait-available": probe(
        "wait --for=condition=Available deployment/web --timeout=30s",
        expect=r"deployment\.apps/web condition met",
    ),
    "apply-create-unchanged": probe(
        "apply -f -", expect=r"configmap/applied (created|unchanged)", stdin=APPLIED
    ),
    "apply-server-side": probe(
        "apply --server-side -f -", expect=r"configmap/applied serverside-applied", stdin=APPLIED
    ),
    "diff": probe(
        "diff -f -", ok=False, expect=(r"-  a: \"1\"", r"\+  a: \"2\""), stdin=CHANGED_CM
    ),
    "replace": probe("replace -f -", expect=r"configmap/settings replaced", stdin=CM),
    "delete-pod": probe("delete pod {pod}", expect=r'pod "{pod}" deleted'),
    "delete-deployment": probe("delete deployment web", expect=r'\Adeployment\.apps "web" deleted'),
    "delete-missing": probe(
        "delete configmap missing", ok=False, expect=r'configmaps "missing" not found'
    ),
    "delete-missing-ignored": probe("delete configmap missing --ignore-not-found", expect=r"\A\Z"),
    # -- the cluster and the client
    "top": probe("top pods", ok=False, expect="Metrics API not available"),
    "explain": probe("explain deployment.spec.replicas", expect=r"FIELD: replicas <integer>"),
    "api-resources": probe(
        "api-resources --api-group=apps",
        expect=r"deployments\s+deploy\s+apps/v1\s+true\s+Deployment",
    ),
    "api-versions": probe("api-versions", expect=(r"(?m)^apps/v1$", r"(?m)^v1$")),
    "version": probe("version", expect=(r"Client Version: v1\.37", r"Server Version: v1\.37")),
    "cluster-info": probe("cluster-info", expect="Kubernetes control plane is running at"),
    "auth-can-i": probe("auth can-i create deployments", expect=r"\Ayes\n\Z"),
    "auth-can-i-list": probe("auth can-i --list", expect=r"\*\.\*\s+\[\]\s+\[\]\s+\[\*\]"),
    "auth-whoami": probe("auth whoami", expect=(r"ATTRIBUTE\s+VALUE", r"Username\s+\S+")),
}


WORLD = [
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
    },
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}},
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "type": "Opaque",
        "data": {"pw": "eA=="},
    },
]


@pytest.fixture
def world(target: Target) -> dict[str, str]:
    """The namespace's usual contents (what ``kubectl create deployment web --replicas=2
    --port=80``, ``expose``, ``create configmap`` and ``create secret generic`` make, in one
    ``kubectl create``); returns the names the probes refer to."""
    # A YAML stream, not a ``kind: List``: kubectl validates a List against /openapi/v2 in
    # protobuf, which kubesim does not serve (a known difference).
    target.kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(WORLD))
    target.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    # The endpoints controller may trail the pods' readiness by a moment.
    target.kubectl(
        "wait", "endpoints/web", "--for=jsonpath={.subsets[0].addresses[1].ip}", "--timeout=30s"
    )
    pods: Any = json.loads(target.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
    pod = sorted(pods["items"], key=lambda p: p["metadata"]["name"])[0]
    return {"pod": pod["metadata"]["name"], "node": pod["spec"]["nodeName"], "ns": target.namespace}


def fill(text: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("case", list(PROBES), ids=list(PROBES))
def test_probe(target: Target, world: dict[str, str], case: str) -> None:
    p = PROBES[case]
    *before, last = [shlex.split(fill(c, world)) for c in p.commands]
    for args in before:
        target.kubectl(*args)
    proc = target.kubectl(*last, check=False, stdin=p.stdin)
    output = proc.stdout + proc.stderr
    assert (proc.returncode == 0) is p.ok, f"exit {proc.returncode}:\n{output}"
    for pattern in p.expect:
        assert re.search(fill(pattern, world), output), f"{pattern!r} not in:\n{output}"
