"""django-q2 jobs for email notices: thin wrappers over notices.services."""

from __future__ import annotations

from notices import services


def send_notices(rollout_id: int, kind: str) -> str:
    """Enqueued after commit when notices are recorded: send those of one rollout and kind."""
    report = services.notices_send(rollout_id=rollout_id, kind=kind)
    return f"sent {report.sent}, retrying {report.retrying}, gave up {report.gave_up}"


def send_due_notices() -> str:
    """Scheduled every minute: send notices whose retry time has come (and lost jobs')."""
    report = services.notices_send()
    return f"sent {report.sent}, retrying {report.retrying}, gave up {report.gave_up}"
