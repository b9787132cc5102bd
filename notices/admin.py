"""Read-only list of email notices: what was owed, to whom, and whether it went out."""

from django.contrib import admin

from audit.admin import ViewOnlyAdmin
from notices.models import Notice


@admin.register(Notice)
class NoticeAdmin(ViewOnlyAdmin):
    list_display = ("id", "kind", "rollout", "site", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("subject", "site__slug")
    list_select_related = ("rollout", "site")
    readonly_fields = [f.name for f in Notice._meta.fields]
