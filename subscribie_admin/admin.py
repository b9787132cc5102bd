"""Third-party admins on the fleet admin site, held to the rule that every action checks a
permission. ``tests/test_admin_view_only.py`` found both by running every action as a viewer.

- django-q2 registers its task lists with a "Resubmit selected tasks to queue" action that
  declares no permission, so any staff user who may merely view the task lists could re-run
  deploy, delete and rollout jobs. It now needs the change permission.
- django-axes' "Clean up expired attempts" deletes rows but declares no permission, and
  crashes (HTTP 500) outside a login request, which is the only place its middleware stamps
  ``request.axes_attempt_time``. It now needs the delete permission, and works.

This module is imported after theirs: ``subscribie_admin`` comes later in INSTALLED_APPS.
"""

from axes import admin as axes_admin
from axes.models import AccessAttempt
from django.contrib import admin
from django.utils import timezone
from django_q import admin as q_admin
from django_q.models import Failure, Success


@admin.action(description="Resubmit selected tasks to queue", permissions=["change"])
def resubmit_task(model_admin, request, queryset):
    return q_admin.resubmit_task(model_admin, request, queryset)


for _model, _base in ((Success, q_admin.TaskAdmin), (Failure, q_admin.FailAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_base,), {"actions": [resubmit_task]}))


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    actions = ["cleanup_expired_attempts"]

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request, queryset):
        request.axes_attempt_time = timezone.now()
        return super().cleanup_expired_attempts(request, queryset)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
