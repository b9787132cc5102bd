"""Failed staff logins and lockouts, written to the audit history.

Receivers of Django's ``user_login_failed`` and django-axes' ``user_locked_out``. The username
is what was typed (untrusted, shown escaped); passwords are never recorded. Successful logins
are in django-axes' access log, not here.
"""

from __future__ import annotations

from typing import Any

from audit.recorder import record

ANONYMOUS = "anonymous"


def _client_ip(request: Any) -> str:
    if request is None:
        return ""
    return getattr(request, "axes_ip_address", "") or request.META.get("REMOTE_ADDR", "")


def record_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any):
    username = str(credentials.get("username", ""))
    record(
        action="auth.login_failed",
        actor=ANONYMOUS,
        subject=username,
        data={"username": username[:150], "ip": _client_ip(request)},
        ok=False,
        message="wrong username or password",
    )


def record_locked_out(sender: Any, request: Any, username: str, ip_address: str, **_: Any):
    record(
        action="auth.locked_out",
        actor=ANONYMOUS,
        subject=str(username or ""),
        data={"username": str(username or "")[:150], "ip": ip_address or ""},
        ok=False,
        message="too many failed logins: locked out for the cool-off period",
    )


def connect() -> None:
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_login_failed

    user_login_failed.connect(record_login_failed, dispatch_uid="audit.login_failed")
    user_locked_out.connect(record_locked_out, dispatch_uid="audit.locked_out")
