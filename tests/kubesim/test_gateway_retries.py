"""The official client under ``cluster.gateway``: retries are the gateway's alone.

urllib3's default ``Retry`` silently re-sends a GET answered 429/503 with ``Retry-After``;
``Cluster.connect`` sets ``configuration.retries = False`` so that a ``RetryPolicy`` of one
attempt really is one request on the wire.
"""

from __future__ import annotations

import pytest
from kubernetes import client, config

from cluster.gateway import Cluster, ClusterError, RetryPolicy
from kubesim import KubeSim

from .support import site_deployment


def _get_deployments(kubesim: KubeSim, namespace: str, name: str) -> int:
    return kubesim.requests().count(
        verb="get", resource="deployments", namespace=namespace, name=name
    )


@pytest.mark.parametrize("status", [503, 429])
def test_one_attempt_is_one_get_on_the_wire(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str, status: int
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("once"))
    cluster = Cluster.connect(
        namespace=kube_namespace,
        kubeconfig=kubesim.kubeconfig_path,
        retry=RetryPolicy(attempts=1),
    )
    try:
        kubesim.faults.add("get", "deployments", "once", status=status, count=1)
        kubesim.reset_requests()
        with pytest.raises(ClusterError) as err:
            cluster.read_deployment("once")
        assert err.value.status == status
        assert _get_deployments(kubesim, kube_namespace, "once") == 1
    finally:
        cluster.api_client.close()


def test_the_clients_default_would_retry_behind_the_gateways_back(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    """The control: without ``retries = False`` urllib3 re-sends the GET, so the test above
    would see it."""
    apps.create_namespaced_deployment(kube_namespace, site_deployment("twice"))
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubesim.kubeconfig_path, client_configuration=configuration)
    assert configuration.retries is None  # urllib3's Retry.DEFAULT
    api_client = client.ApiClient(configuration)
    try:
        kubesim.faults.add("get", "deployments", "twice", status=503, count=1, retry_after=0)
        kubesim.reset_requests()
        client.AppsV1Api(api_client).read_namespaced_deployment("twice", kube_namespace)
        assert _get_deployments(kubesim, kube_namespace, "twice") == 2
    finally:
        api_client.close()
