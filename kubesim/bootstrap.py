"""Objects a real control plane creates on its own, which clients expect to find.

* The one Node, ``kubesim-node``, where every pod is scheduled: Ready, with capacity,
  allocatable and the kubelet's usual conditions (``pkg/kubelet/nodestatus/setters.go``). It
  runs no kubelet and no container runtime (kubesim/kubelet.py says what that means for logs,
  exec, attach and port-forward), and its nodeInfo says so.
* In every namespace, the ``default`` ServiceAccount (the serviceaccounts controller) and the
  ``kube-root-ca.crt`` ConfigMap (the root-ca-cert-publisher). Real controllers create them
  shortly after the namespace; kubesim creates them with it, as a fast cluster would, and the
  controllers put them back if they are deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .resources import CONFIGMAPS, LEASES, NAMESPACES, NODES, SERVICEACCOUNTS

if TYPE_CHECKING:
    from .api import Api

NODE_NAME = "kubesim-node"
NODE_IP = "10.0.0.1"
KUBELET_VERSION = "v1.37.1-kubesim"
DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)
# A self-signed CA certificate (the key was thrown away: kubesim serves plain HTTP, so nothing
# verifies against it; it is here because pods and tools expect a PEM bundle in ca.crt).
ROOT_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUQr2GqnwAxjLcie1n3sJbIhopsaswCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjEyMDMwNzAxMTdaGA8yMTI2MTEw
OTA3MDExN1owFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABGCekgH/XZWs5LpZISNWKF9RQwMMWOJEWT3lBw/X1FfCa0X7hwso
4jerL3S370aHmlAxpiQ89pEpIa1E5zwEUJGjYzBhMB0GA1UdDgQWBBRrPF0YWbo7
iPiRmXa5zZZkDEdTTzAfBgNVHSMEGDAWgBRrPF0YWbo7iPiRmXa5zZZkDEdTTzAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDAKBggqhkjOPQQDAgNJADBG
AiEA08H8zizOK5xFqPTkXagkbcCyEz0H2ePKJWflit81IpUCIQDLUCya7iHZJ8h7
cbiKRErLj6XDVhWNeP/WpD+GLd6wDw==
-----END CERTIFICATE-----
"""

_CAPACITY = {
    "cpu": "64",
    "ephemeral-storage": "1073741824Ki",
    "hugepages-1Gi": "0",
    "hugepages-2Mi": "0",
    "memory": "268435456Ki",
    # A real kubelet says 110; kubesim schedules a whole fleet on its one node.
    "pods": "10k",
}
# Capacity minus the kubelet's default hard eviction thresholds (memory.available<100Mi,
# nodefs.available<10%), which is how a kubelet without reservations computes allocatable.
_ALLOCATABLE = dict(_CAPACITY, memory="268333056Ki", **{"ephemeral-storage": "966367641600"})


def node_manifest(now: str) -> dict[str, Any]:
    conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
        "status": {
            "capacity": dict(_CAPACITY),
            "allocatable": dict(_ALLOCATABLE),
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                    "reason": r,
                    "message": m,
                }
                for t, s, r, m in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "6b75626573696d2d6e6f64652d300000",
                "systemUUID": "6b756265-7369-6d2d-6e6f-64652d300000",
                "bootID": "6b756265-7369-6d2d-626f-6f742d300000",
                "kernelVersion": "kubesim",
                "osImage": "kubesim (no container runtime)",
                "containerRuntimeVersion": "kubesim://none",
                "kubeletVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def create_node(api: Api, now: str) -> None:
    """The node, and its heartbeat Lease in kube-node-lease (``kubectl describe node`` reads it).

    The lease is renewed once, now: kubesim runs no node-lifecycle controller that would mark
    the node NotReady for a stale lease.
    """
    node = api.create(NODES, "", node_manifest(now), internal=True)
    if api.store.get(NAMESPACES.key, "", "kube-node-lease") is None:
        api.create(NAMESPACES, "", {"metadata": {"name": "kube-node-lease"}})
    api.create(
        LEASES,
        "kube-node-lease",
        {
            "metadata": {
                "name": NODE_NAME,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": NODE_NAME,
                        "uid": node["metadata"]["uid"],
                    }
                ],
            },
            "spec": {
                "holderIdentity": NODE_NAME,
                "leaseDurationSeconds": 40,
                "renewTime": now.replace("Z", ".000000Z"),
            },
        },
        internal=True,
    )


def namespace_defaults(api: Api, ns: str) -> None:
    """Create what the controllers put in every namespace, if missing (caller may hold the lock)."""
    store = api.store
    with store.lock:
        namespace = store.get(NAMESPACES.key, "", ns)
        if namespace is None or (namespace.get("status") or {}).get("phase") == "Terminating":
            return
        if store.get(SERVICEACCOUNTS.key, ns, DEFAULT_SERVICE_ACCOUNT) is None:
            api.create(
                SERVICEACCOUNTS,
                ns,
                {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}},
                internal=True,
            )
        if store.get(CONFIGMAPS.key, ns, ROOT_CA_CONFIGMAP) is None:
            api.create(
                CONFIGMAPS,
                ns,
                {
                    "metadata": {
                        "name": ROOT_CA_CONFIGMAP,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": ROOT_CA_PEM},
                },
                internal=True,
            )
