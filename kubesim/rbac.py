"""Who a request comes from, and what RBAC lets them do: kube-apiserver's rules, for kubesim.

Authentication (``identify``): a bearer token that kubesim issued through a TokenRequest
(``kubectl create token SA``, kubesim/authentication.py) is that ServiceAccount, while it has
not expired and its ServiceAccount (same uid) still exists; any other such token is refused
with 401. Every other caller is the cluster admin kubesim's kubeconfig names
(``system:masters``), as before. A caller may impersonate (``Impersonate-User`` and
``Impersonate-Group``, what ``kubectl --as``/``--as-group`` send) when RBAC lets them
``impersonate`` (the admin always may).

Authorization (``authorize``): ``system:masters`` is allowed before RBAC is consulted (the real
server's privileged-group authorizer). Anyone else gets exactly what the stored
ClusterRoleBindings and the namespace's RoleBindings grant (rbac/v1 matching, as
``pkg/registry/rbac/validation`` and ``pkg/apis/rbac/v1/evaluation_helpers.go``), plus the
bootstrap grants every authenticated user has on a real cluster (system:basic-user,
system:discovery, system:public-info-viewer). The first binding that allows is the reason,
worded as the real authorizer words it.

Pure functions over plain data: the store is passed in as ``Bindings``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .authentication import DEFAULT_AUDIENCE as ISSUER  # kubesim's tokens name it as both
from .errors import ApiError

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups

    def info(self) -> dict[str, Any]:
        """``userInfo`` as a SelfSubjectReview shows it."""
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        info["groups"] = list(self.groups)
        return info


ADMIN = User("kubesim-admin", (MASTERS, AUTHENTICATED))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (authorizer.Attributes). ``path`` only for non-resource URLs."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return not self.path


@dataclass(frozen=True)
class Bindings:
    """Read access to the stored RBAC objects: ``list(plural, namespace)`` and
    ``get(plural, namespace, name)`` over roles, rolebindings, clusterroles and
    clusterrolebindings (cluster-scoped ones with namespace "")."""

    list: Callable[[str, str], Iterable[dict[str, Any]]]
    get: Callable[[str, str, str], dict[str, Any] | None]


def _group_binding(name: str, group: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "Group", "name": group}],
    }


_DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
# The bootstrap policy's grants to every authenticated user (plugin/pkg/auth/authorizer/rbac/
# bootstrappolicy): reviewing oneself, and reading discovery and health.
_BOOTSTRAP_ROLES: dict[str, list[dict[str, Any]]] = {
    "system:basic-user": [
        {
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        },
        {
            "verbs": ["create"],
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
        },
    ],
    "system:discovery": [
        {
            "verbs": ["get"],
            "nonResourceURLs": _DISCOVERY_URLS,
        }
    ],
    "system:public-info-viewer": [
        {
            "verbs": ["get"],
            "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
        }
    ],
}
_BOOTSTRAP_BINDINGS = [_group_binding(name, AUTHENTICATED) for name in _BOOTSTRAP_ROLES]


# --- authentication -----------------------------------------------------------------------------


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def _token_claims(authorization: str) -> dict[str, Any] | None:
    """The claims of a kubesim-issued ServiceAccount token, or None for any other credential."""
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("kubernetes.io"), dict):
        return None
    return claims if claims.get("iss") == ISSUER else None


def service_account_user(namespace: str, name: str, uid: str = "") -> User:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED)
    return User(f"{SA_PREFIX}{namespace}:{name}", groups, uid)


def identify(
    headers: Any,
    service_account: Callable[[str, str], dict[str, Any] | None],
    bindings: Bindings,
    *,
    now: Callable[[], float] = time.time,
) -> User:
    """The user a request acts as. ``headers`` is the request's (``get`` and ``get_all``);
    raises 401 for a kubesim token that is no longer valid and 403 for an impersonation the
    caller may not make."""
    user = ADMIN
    claims = _token_claims(headers.get("Authorization") or "")
    if claims is not None:
        bound = claims["kubernetes.io"]
        account = bound.get("serviceaccount") if isinstance(bound, dict) else None
        namespace = bound.get("namespace") if isinstance(bound, dict) else None
        if not isinstance(account, dict) or not isinstance(namespace, str):
            raise unauthorized()
        stored = service_account(namespace, str(account.get("name")))
        exp = claims.get("exp")
        if (
            stored is None
            or stored["metadata"].get("uid") != account.get("uid")
            or not isinstance(exp, int | float)
            or exp < now()
        ):
            raise unauthorized()
        user = service_account_user(namespace, stored["metadata"]["name"], account["uid"])
    as_user = headers.get("Impersonate-User")
    if not as_user:
        return user
    as_groups = [g for g in (headers.get_all("Impersonate-Group") or []) if g]
    _check_impersonation(user, as_user, as_groups, bindings)
    if not as_groups and as_user.startswith(SA_PREFIX) and as_user.count(":") == 3:
        namespace = as_user.split(":")[2]
        as_groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    if AUTHENTICATED not in as_groups and as_user != "system:anonymous":
        as_groups.append(AUTHENTICATED)
    return User(as_user, tuple(as_groups))


def _check_impersonation(user: User, as_user: str, as_groups: list[str], b: Bindings) -> None:
    wanted: list[Attributes] = []
    if as_user.startswith(SA_PREFIX) and as_user.count(":") == 3:
        _, _, namespace, name = as_user.split(":")
        wanted.append(Attributes("impersonate", "", "serviceaccounts", "", namespace, name))
    else:
        wanted.append(Attributes("impersonate", "", "users", name=as_user))
    wanted += [Attributes("impersonate", "", "groups", name=g) for g in as_groups]
    for attrs in wanted:
        allowed, _reason = authorize(user, attrs, b)
        if not allowed:
            raise forbidden(user, attrs)


# --- authorization ------------------------------------------------------------------------------


def authorize(user: User, attrs: Attributes, b: Bindings) -> tuple[bool, str]:
    """(allowed, reason): the answer of the real server's Node,RBAC chain for ``attrs``."""
    if user.privileged:
        return True, ""
    for source, rules in _rule_sources(user, attrs.namespace, b):
        if any(_rule_allows(attrs, rule) for rule in rules):
            return True, f"RBAC: allowed by {source}"
    return False, ""


def rules_for(user: User, namespace: str, b: Bindings) -> list[dict[str, Any]]:
    """Every rule the user holds in ``namespace`` (a SelfSubjectRulesReview's input)."""
    return [rule for _source, rules in _rule_sources(user, namespace, b) for rule in rules]


def forbidden(user: User, attrs: Attributes, reason: str = "") -> ApiError:
    """403 as the authorization filter answers it (ForbiddenStatusError)."""
    if not attrs.is_resource:
        message = f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, "Forbidden", message + (f": {reason}" if reason else ""), {})
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = (
        f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group '
        f'"{attrs.group}" {where}'
    ) + (f": {reason}" if reason else "")
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {"name": attrs.name} if attrs.name else {}
    details.update(group=attrs.group, kind=attrs.resource)
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", details)


def _rule_sources(
    user: User, namespace: str, b: Bindings
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(how the real authorizer names the grant, its rules), cluster-wide bindings first."""
    cluster_wide = [*_BOOTSTRAP_BINDINGS, *b.list("clusterrolebindings", "")]
    bound = [(binding, "") for binding in cluster_wide]
    if namespace:
        bound += [(binding, namespace) for binding in b.list("rolebindings", namespace)]
    for binding, binding_namespace in bound:
        subject = _matching_subject(user, binding, binding_namespace)
        if subject is None:
            continue
        ref = binding.get("roleRef") or {}
        name = binding["metadata"]["name"]
        kind = "RoleBinding" if binding_namespace else "ClusterRoleBinding"
        where = f"{name}/{binding_namespace}" if binding_namespace else name
        source = (
            f'{kind} "{where}" of {ref.get("kind")} "{ref.get("name")}" to '
            f"{_describe(subject, binding_namespace)}"
        )
        yield source, _role_rules(ref, binding_namespace, b)


def _role_rules(ref: dict[str, Any], namespace: str, b: Bindings) -> list[dict[str, Any]]:
    name = str(ref.get("name") or "")
    if ref.get("kind") == "ClusterRole":
        if name in _BOOTSTRAP_ROLES and b.get("clusterroles", "", name) is None:
            return _BOOTSTRAP_ROLES[name]
        role = b.get("clusterroles", "", name)
    elif ref.get("kind") == "Role" and namespace:
        role = b.get("roles", namespace, name)
    else:
        role = None
    rules = (role or {}).get("rules")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def _matching_subject(user: User, binding: dict[str, Any], namespace: str) -> dict | None:
    for subject in binding.get("subjects") or []:
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == user.name:
            return subject
        if kind == "Group" and name in user.groups:
            return subject
        if kind == "ServiceAccount":
            sa_namespace = subject.get("namespace") or namespace
            if user.name == f"{SA_PREFIX}{sa_namespace}:{name}":
                return subject
    return None


def _describe(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name")}/{namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def _rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        return any(
            url == "*"
            or url == attrs.path
            or (url.endswith("*") and attrs.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    combined = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    if not any(
        resource in ("*", combined) or (attrs.subresource and resource == f"*/{attrs.subresource}")
        for resource in rule.get("resources") or []
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names
