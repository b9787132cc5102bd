"""Start-up system checks: refuse configurations that would misbehave at run time."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_q_cluster_retry(app_configs=None, **kwargs) -> list[Error]:
    """django-q2 redelivers a task not acknowledged within ``retry`` seconds.

    If ``retry`` is not longer than ``timeout``, a task that is still running legitimately gets
    delivered a second time; refuse that configuration.
    """
    cluster = getattr(settings, "Q_CLUSTER", {})
    timeout = cluster.get("timeout")
    retry = cluster.get("retry", 60)
    if not timeout:
        return [
            Error(
                "Q_CLUSTER has no timeout: a stuck job would hold a worker forever.",
                hint="Set Q_TIMEOUT (seconds), smaller than Q_RETRY.",
                id="subscribie_admin.E001",
            )
        ]
    if retry <= timeout:
        return [
            Error(
                f"Q_CLUSTER retry ({retry}s) must be longer than timeout ({timeout}s): django-q2 "
                "would deliver a still-running job a second time.",
                hint="Raise Q_RETRY above Q_TIMEOUT (or lower Q_TIMEOUT).",
                id="subscribie_admin.E002",
            )
        ]
    return []


@register()
def check_max_attempts(app_configs=None, **kwargs) -> list[Error]:
    """A failing job must stop being retried eventually."""
    if not settings.Q_CLUSTER.get("max_attempts"):
        return [
            Error(
                "Q_CLUSTER max_attempts is 0 (retry forever).",
                hint="Set a finite max_attempts in subscribie_admin/config.py.",
                id="subscribie_admin.E003",
            )
        ]
    return []
