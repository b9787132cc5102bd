"""Fixtures that point the official client at ``kube_target`` (kubesim, or the real control
plane in ``make test-real``) instead of the suite's own kubesim: a test module imports both
names to run its contract on either cluster."""

from __future__ import annotations

import pytest

from tests.fixtures.any_cluster import KubeTarget


@pytest.fixture
def kube_namespace(kube_target: KubeTarget) -> str:
    return kube_target.namespace


@pytest.fixture
def kube_api_client(kube_target: KubeTarget):
    import kubernetes

    api_client = kubernetes.config.new_client_from_config(kube_target.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()
