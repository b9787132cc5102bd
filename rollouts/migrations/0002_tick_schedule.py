"""Create the django-q2 schedules (site status refresh, rollout ticks); see schedules.py."""

from django.db import migrations

from subscribie_admin.schedules import ensure_schedules, remove_schedules


def create(apps, schema_editor):
    ensure_schedules(apps.get_model("django_q", "Schedule"))


def delete(apps, schema_editor):
    remove_schedules(apps.get_model("django_q", "Schedule"))


class Migration(migrations.Migration):
    dependencies = [
        ("rollouts", "0001_initial"),
        ("sites", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, delete)]
