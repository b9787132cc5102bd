"""Start-up system checks: refuse configurations that would misbehave at run time."""

from django.conf import settings
from django.core.checks import Error, Warning, register


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


@register()
def check_job_durations(app_configs=None, **kwargs) -> list[Error]:
    """Jobs that run for a while must finish inside django-q2's timeout (or be killed)."""
    timeout = settings.Q_CLUSTER.get("timeout") or 0
    errors = []
    for name in ("ROLLOUT_JOB_SECONDS", "SITE_DEPLOY_WATCH_SECONDS"):
        value = getattr(settings, name)
        if timeout and value >= timeout:
            errors.append(
                Error(
                    f"{name} ({value}s) must be shorter than the job timeout Q_TIMEOUT "
                    f"({timeout}s).",
                    hint=f"Lower {name} or raise Q_TIMEOUT (and Q_RETRY above it).",
                    id="subscribie_admin.E004",
                )
            )
    if settings.ROLLOUT_LEASE_SECONDS <= settings.ROLLOUT_JOB_SECONDS:
        errors.append(
            Error(
                "ROLLOUT_LEASE_SECONDS must exceed ROLLOUT_JOB_SECONDS, or two jobs could tick "
                "one rollout at once.",
                hint="Raise ROLLOUT_LEASE_SECONDS.",
                id="subscribie_admin.E005",
            )
        )
    return errors


@register()
def check_email_backend(app_configs=None, **kwargs) -> list[Warning]:
    """Owner and staff notices only print to the console unless EMAIL_URL names a mail server."""
    if settings.DEBUG or not settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        return []
    return [
        Warning(
            "EMAIL_URL is not set: owner and staff notices are printed, not sent.",
            hint="Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587.",
            id="subscribie_admin.W001",
        )
    ]
