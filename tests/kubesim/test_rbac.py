"""RBAC as kubectl meets it, on kubesim and (contract mode) a real cluster: the admin's Role
from deploy/kubernetes/rbac.yaml bound to a ServiceAccount, checked with ``kubectl auth can-i
--as`` (impersonation) and used through the ServiceAccount's own token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.identities import admin_role_docs, token_kubeconfig

from .kubectl_target import KUBECTL, Target

pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]

ACCOUNT = "fleet-admin"


def bind(target: Target) -> str:
    """The Role bound to ACCOUNT in the target's namespace; returns the account's user name."""
    target.apply_manifest(*admin_role_docs(target.namespace, ACCOUNT))
    return f"system:serviceaccount:{target.namespace}:{ACCOUNT}"


def can_i(target: Target, *args: str) -> str:
    """``kubectl auth can-i``'s answer line ("yes", or "no" with any reason)."""
    return target.kubectl("auth", "can-i", *args, check=False).stdout.strip()


def eventually(check, timeout: float = 15.0):
    """A real API server's authorizer reads bindings from an informer: new ones apply within
    moments, not at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_can_i_as_the_service_account_answers_from_its_role(target: Target) -> None:
    user = bind(target)

    def allowed_to_patch() -> None:
        assert can_i(target, "patch", "deployments", "--as", user) == "yes"

    eventually(allowed_to_patch)
    for verb, resource in [
        ("watch", "deployments"),
        ("create", "secrets"),
        ("delete", "ingresses"),
    ]:
        assert can_i(target, verb, resource, "--as", user) == "yes", (verb, resource)
    for verb, resource in [("get", "secrets"), ("list", "secrets"), ("delete", "pods")]:
        assert can_i(target, verb, resource, "--as", user) == "no", (verb, resource)
    assert can_i(target, "get", "deployments", "--as", user, "-n", "default") == "no"
    # Every authenticated user may review itself (the bootstrap policy's system:basic-user).
    assert can_i(target, "create", "selfsubjectaccessreviews", "--as", user) == "yes"
    # The cluster admin itself is allowed before RBAC is consulted.
    assert can_i(target, "get", "secrets") == "yes"


def test_the_access_review_names_the_binding_that_allows(target: Target) -> None:
    user = bind(target)
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": target.namespace,
                "verb": "patch",
                "group": "apps",
                "resource": "deployments",
            }
        },
    }

    def reviewed() -> dict:
        flags = ["-o", "json", "--validate=false", "--as", user]
        out = target.kubectl("create", "-f", "-", *flags, stdin=json.dumps(review)).stdout
        return json.loads(out)["status"]

    def answered() -> dict:
        status = reviewed()
        assert status["allowed"] is True, status
        return status

    status = eventually(answered)
    ns = target.namespace
    assert status["reason"] == (
        f'RBAC: allowed by RoleBinding "subscribie-admin/{ns}" of Role "subscribie-admin" '
        f'to ServiceAccount "{ACCOUNT}/{ns}"'
    )
    review["spec"]["resourceAttributes"]["resource"] = "secrets"
    review["spec"]["resourceAttributes"]["group"] = ""
    review["spec"]["resourceAttributes"]["verb"] = "get"
    assert reviewed() == {"allowed": False}


def test_the_service_accounts_token_gets_exactly_its_role(target: Target, tmp_path: Path) -> None:
    # The official client: kubectl sends no bearer token over kubesim's plain HTTP.
    from kubernetes import client, config

    user = bind(target)
    token = target.kubectl("create", "token", ACCOUNT, "--duration=10m").stdout.strip()
    kubeconfig = token_kubeconfig(target.kubeconfig, token, tmp_path / "token", target.namespace)
    api = config.new_client_from_config(kubeconfig)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    try:
        who = client.AuthenticationV1Api(api).create_self_subject_review({})
        assert who.status.user_info.username == user
        groups = set(who.status.user_info.groups)
        assert {"system:serviceaccounts", f"system:serviceaccounts:{target.namespace}"} <= groups
        assert "system:authenticated" in groups

        eventually(lambda: apps.list_namespaced_deployment(target.namespace))
        refused = forbidden(lambda: core.list_namespaced_secret(target.namespace))
        assert refused == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'secrets is forbidden: User "{user}" cannot list resource "secrets" '
            f'in API group "" in the namespace "{target.namespace}"',
            "reason": "Forbidden",
            "details": {"kind": "secrets"},
            "code": 403,
        }
        one = forbidden(lambda: core.read_namespaced_secret("any", target.namespace))
        assert one["message"].startswith('secrets "any" is forbidden: User "')
        assert one["details"] == {"name": "any", "kind": "secrets"}
        elsewhere = forbidden(lambda: apps.list_namespaced_deployment("default"))
        assert elsewhere["message"].startswith("deployments.apps is forbidden")
        assert elsewhere["details"] == {"group": "apps", "kind": "deployments"}
        api.set_default_header("Impersonate-User", "someone")
        impersonating = forbidden(lambda: apps.list_namespaced_deployment(target.namespace))
        # v1.37 checks constrained impersonation first ("cannot impersonate-on:user-info:list
        # resource "deployments" ..."); kubesim words it the classic way (impersonate users).
        assert f'User "{user}" cannot impersonate' in impersonating["message"]
        del api.default_headers["Impersonate-User"]

        # A deleted ServiceAccount's token authenticates no one.
        target.kubectl("delete", "serviceaccount", ACCOUNT)

        def unauthorized() -> None:
            try:
                apps.list_namespaced_deployment(target.namespace)
            except client.ApiException as gone:
                assert gone.status == 401, gone.body
            else:
                raise AssertionError("the deleted account's token still authenticates")

        eventually(unauthorized, timeout=30)
    finally:
        api.close()


def forbidden(call) -> dict:
    """The Status body of a call that must be refused with 403."""
    from kubernetes import client

    with pytest.raises(client.ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body
    return json.loads(refused.value.body)
