"""Kubernetes-style API errors.

Every failure the emulator reports to a client is an :class:`ApiError`, rendered as a
``kind: Status`` body exactly like kube-apiserver does (``status: Failure``, ``reason``,
``code``, ``details``), because both kubectl and the official client read those fields.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error that becomes a ``Status`` response with HTTP status ``code``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``Status`` body; empty ``reason`` and ``details.group`` are left out (omitempty).

        An empty reason is ``StatusReasonUnknown``: what kube-apiserver answers (code 500) for
        an error that is not an API status, such as a failed dial to a kubelet.
        """
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            details = self.details
            if "group" in details and not details["group"]:
                details = {k: v for k, v in details.items() if k != "group"}
            body["details"] = details
        body["code"] = self.code
        return body


def _qualified(kind_plural: str, group: str) -> str:
    return f"{kind_plural}.{group}" if group else kind_plural


def _about(code: int, reason: str, message: str, plural: str, group: str, name: str) -> ApiError:
    """An error about one named object (its ``details`` name the object, as the API's do)."""
    return ApiError(code, reason, message, {"name": name, "group": group, "kind": plural})


def not_found(plural: str, group: str, name: str) -> ApiError:
    what = _qualified(plural, group)
    return _about(404, "NotFound", f'{what} "{name}" not found', plural, group, name)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    what = _qualified(plural, group)
    return _about(409, "AlreadyExists", f'{what} "{name}" already exists', plural, group, name)


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}'
    return _about(409, "Conflict", message, plural, group, name)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid. ``causes`` are (reason, field, message) like FieldValueInvalid."""
    msgs = "; ".join(f"{field}: {msg}" for _, field, msg in causes)
    if len(causes) > 1:
        msgs = "[" + ", ".join(f"{field}: {msg}" for _, field, msg in causes) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind}.{group} "{name}" is invalid: {msgs}'
        if group
        else f'{kind} "{name}" is invalid: {msgs}',
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(ctype: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ctype})",  # noqa: E501 - verbatim message
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
