"""Create the django-q2 schedule that keeps rollouts moving (idempotent: keyed by name).

Every minute ``tick_active_rollouts`` reaps stalled rollouts and re-enqueues a tick for every
running or reverting rollout whose engine lease has expired, so a lost job or a killed worker
cannot strand a rollout.
"""

from django.db import migrations

SCHEDULE_NAME = "rollouts: tick active rollouts"
FUNC = "rollouts.tasks.tick_active_rollouts"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
