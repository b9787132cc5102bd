"""Read-only admin for the audit history, with CSV export."""

import csv

from django.contrib import admin
from django.http import HttpResponse
from django.utils import timezone

from audit.models import AuditEvent

CSV_COLUMNS = (
    "created_at",
    "actor_label",
    "action",
    "subject",
    "site_id",
    "rollout_id",
    "result",
    "message",
    "data",
)


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection: subjects and messages come from user input."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows nobody, not even a superuser, adds, changes or deletes through the admin.

    For records written only by services (audit history, rollouts moved by the engine).
    """

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    """Append-only history: read, filter, search, export."""

    list_display = ("created_at", "actor_label", "action", "subject", "result", "short_message")
    list_filter = ("action", "result", "actor_label", ("created_at", admin.DateFieldListFilter))
    search_fields = ("action", "actor_label", "subject", "message")
    date_hierarchy = "created_at"
    list_select_related = ()
    actions = ["export_csv"]
    list_per_page = 100

    @admin.display(description="message")
    def short_message(self, event: AuditEvent) -> str:
        return event.message[:120]

    @admin.action(description="Export selected events as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        for event in queryset.order_by("created_at", "id").iterator():
            writer.writerow([_csv_safe(getattr(event, column)) for column in CSV_COLUMNS])
        return response
