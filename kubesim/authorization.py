"""authorization.k8s.io/v1 SelfSubjectAccessReview and SelfSubjectRulesReview (create only).

``kubectl auth can-i VERB RESOURCE`` creates a SelfSubjectAccessReview and prints ``yes`` or
``no``; ``kubectl auth can-i --list`` creates a SelfSubjectRulesReview. Neither is stored: the
API server answers 201 with the request and a computed ``status``
(``pkg/registry/authorization/selfsubjectaccessreview/rest.go``).

kubesim authenticates no one and emulates no RBAC: every request it serves is allowed, as for
a cluster admin (``system:masters``) on a real cluster. So the answer is the admin's, for
whichever identity asks: a SelfSubjectAccessReview gets ``{"allowed": true}`` (no reason: the
masters group is allowed before RBAC is consulted), a SelfSubjectRulesReview the cluster-admin
rules ``*`` on ``*.*`` and on every non-resource URL, with ``spec`` left empty and 400 ``no
namespace on request`` without ``spec.namespace``, as a real v1.37.2 server answers. Roles and
RoleBindings are stored (``kubectl create role`` works) but not enforced
(deploy/kubernetes/rbac.yaml is checked against kubesim's request log instead, in
tests/test_deploy_rbac.py).

client-go sends the reviews ``kubectl auth can-i`` creates in protobuf
(``Request.UseProtobufAsDefault``); kubesim/protobuf.py decodes them into the same dict as the
JSON of ``kubectl create -f`` or the official Python client.
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request, invalid
from .resources import ResourceType

REASON = "kubesim allows every request: it emulates no RBAC (like --authorization-mode=AlwaysAllow)"


def review(rt: ResourceType, body: Any) -> dict[str, Any]:
    """The created review: ``body`` (validated) with ``status`` filled in."""
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
        status: dict[str, Any] = {"allowed": True}
    else:
        if not spec.get("namespace"):
            raise bad_request("no namespace on request")
        spec = {}  # the rules review answers with status only
        status = {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": {k: v for k, v in meta.items() if k not in ("resourceVersion", "uid")},
        "spec": spec,
        "status": status,
    }
