"""The django-q2 schedules the product relies on, created by a data migration.

Kept in one place so the migration, the demo and the tests create exactly the same rows.
"""

from __future__ import annotations

from typing import Any

# (name, function, every N minutes)
SCHEDULES: tuple[tuple[str, str, int], ...] = (
    # Moves sites deploying -> live/failed/missing without anyone watching.
    ("sites: refresh site status", "sites.tasks.refresh_site_status", 1),
    # Reaps stalled rollouts and resumes any whose job was lost (killed worker).
    ("rollouts: tick active rollouts", "rollouts.tasks.tick_active_rollouts", 1),
    # Retries email notices whose send failed (and sends any whose job was lost).
    ("notices: send due notices", "notices.tasks.send_due_notices", 1),
)


def ensure_schedules(schedule_model: Any = None) -> None:
    """Create or update the schedules (idempotent: keyed by name).

    ``schedule_model`` is the historical model inside a migration, else django-q2's own.
    """
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    for name, func, minutes in SCHEDULES:
        schedule_model.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def remove_schedules(schedule_model: Any) -> None:
    schedule_model.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()
