"""Create the every-minute schedule that retries email notices (see schedules.py)."""

from django.db import migrations

from subscribie_admin.schedules import ensure_schedules


def create(apps, schema_editor):
    ensure_schedules(apps.get_model("django_q", "Schedule"))


def delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        func="notices.tasks.send_due_notices"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notices", "0001_initial"),
        ("rollouts", "0002_tick_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, delete)]
