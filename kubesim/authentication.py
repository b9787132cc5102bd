"""authentication.k8s.io/v1: SelfSubjectReview (``kubectl auth whoami``) and TokenRequest
(``kubectl create token SA``, the ``serviceaccounts/{name}/token`` subresource).

A TokenRequest gets a JWT-shaped token whose claims are the ones a real server puts in
(issuer, audience, subject, expiry, the bound ServiceAccount), signed by nobody. A request
carrying one acts as that ServiceAccount, with exactly what RBAC grants it (kubesim/rbac.py);
every other caller is the cluster admin kubesim's kubeconfig names. SelfSubjectReview answers
with whoever the request acts as.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import bad_request

DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600


def self_subject_review(body: Any, user_info: dict[str, Any]) -> dict[str, Any]:
    """The created review: who the caller is (``user_info``, kubesim/rbac.py's User.info())."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": _rfc3339(time.time())},
        "status": {"userInfo": user_info},
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_request(service_account: dict[str, Any], body: Any) -> dict[str, Any]:
    """The created TokenRequest for ``service_account``: spec defaulted, status.token set."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    audiences = spec.get("audiences") or [DEFAULT_AUDIENCE]
    expiration = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION)
    meta = service_account["metadata"]
    now = int(time.time())
    claims = {
        "aud": audiences,
        "exp": now + expiration,
        "iat": now,
        "iss": DEFAULT_AUDIENCE,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": meta["namespace"],
            "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
        },
        "nbf": now,
        "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
    }
    header = {"alg": "none", "kid": "kubesim"}
    token = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "creationTimestamp": _rfc3339(now),
        },
        "spec": {
            "audiences": audiences,
            "expirationSeconds": expiration,
            "boundObjectRef": spec.get("boundObjectRef"),
        },
        "status": {"token": token + ".", "expirationTimestamp": _rfc3339(now + expiration)},
    }
