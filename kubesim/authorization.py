"""authorization.k8s.io/v1 SelfSubjectAccessReview and SelfSubjectRulesReview (create only).

``kubectl auth can-i VERB RESOURCE`` creates a SelfSubjectAccessReview and prints ``yes`` or
``no``; ``kubectl auth can-i --list`` creates a SelfSubjectRulesReview. Neither is stored: the
API server answers 201 with the request and a computed ``status``
(``pkg/registry/authorization/selfsubjectaccessreview/rest.go``).

Both answer for whoever the request acts as (kubesim/rbac.py): the cluster admin
(``system:masters``) gets ``{"allowed": true}`` (no reason: the masters group is allowed before
RBAC is consulted) and the cluster-admin rules ``*`` on ``*.*`` and on every non-resource URL;
a ServiceAccount token or an impersonated user (``kubectl auth can-i --as ...``) gets what the
stored Roles, ClusterRoles and their bindings grant, with the real authorizer's reason
(``RBAC: allowed by RoleBinding "x/ns" of Role "y" to ServiceAccount "sa/ns"``). A rules
review has ``spec`` left empty and answers 400 ``no namespace on request`` without
``spec.namespace``, as a real v1.37.2 server does.

client-go sends the reviews ``kubectl auth can-i`` creates in protobuf
(``Request.UseProtobufAsDefault``); kubesim/protobuf.py decodes them into the same dict as the
JSON of ``kubectl create -f`` or the official Python client.
"""

from __future__ import annotations

from typing import Any

from . import rbac
from .errors import bad_request, invalid
from .resources import ResourceType

_ADMIN_RULES = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}
_RESOURCE_RULE_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames")


def review(rt: ResourceType, body: Any, user: rbac.User, bindings: rbac.Bindings) -> dict[str, Any]:
    """The created review of what ``user`` may do: ``body`` (validated) with ``status``."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    kind = body.get("kind")
    if kind and kind != rt.kind:
        raise bad_request(
            f"the kind of the provided object ({kind}) does not match the resource ({rt.kind})"
        )
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    if rt.kind == "SelfSubjectAccessReview":
        has_res = isinstance(spec.get("resourceAttributes"), dict)
        has_non = isinstance(spec.get("nonResourceAttributes"), dict)
        if has_res == has_non:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [
                    (
                        "FieldValueInvalid",
                        "spec",
                        "Invalid value: null: exactly one of nonResourceAttributes or "
                        "resourceAttributes must be specified",
                    )
                ],
            )
        allowed, reason = rbac.authorize(user, _attributes(spec), bindings)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
    else:
        namespace = spec.get("namespace")
        if not namespace:
            raise bad_request("no namespace on request")
        spec = {}  # the rules review answers with status only
        status = _ADMIN_RULES if user.privileged else _rules(user, str(namespace), bindings)
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": {k: v for k, v in meta.items() if k not in ("resourceVersion", "uid")},
        "spec": spec,
        "status": status,
    }


def _attributes(spec: dict[str, Any]) -> rbac.Attributes:
    res = spec.get("resourceAttributes")
    if isinstance(res, dict):
        return rbac.Attributes(
            verb=str(res.get("verb") or ""),
            group=str(res.get("group") or ""),
            resource=str(res.get("resource") or ""),
            subresource=str(res.get("subresource") or ""),
            namespace=str(res.get("namespace") or ""),
            name=str(res.get("name") or ""),
        )
    non = spec["nonResourceAttributes"]
    return rbac.Attributes(verb=str(non.get("verb") or ""), path=str(non.get("path") or ""))


def _rules(user: rbac.User, namespace: str, bindings: rbac.Bindings) -> dict[str, Any]:
    resource_rules, non_resource_rules = [], []
    for rule in rbac.rules_for(user, namespace, bindings):
        if rule.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            )
        else:
            resource_rules.append({k: rule[k] for k in _RESOURCE_RULE_FIELDS if rule.get(k)})
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
