"""The admin site: Django's, with a fleet dashboard on its index page and, when
``ADMIN_REQUIRE_OTP`` is on (the default outside DEBUG), a TOTP second factor for everyone.

With the second factor required, a user counts as staff for the admin only once a confirmed
django-otp device has verified a token in this session (as django-otp's ``OTPAdminSite``); the
login page then asks for the token. The setting is read per request, so tests can flip it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from subscribie_admin.dashboard_charts import fleet_charts

OTP_LOGIN_TEMPLATE = "otp/admin111/login.html"  # django-otp's, with the token field


def otp_required() -> bool:
    return bool(getattr(settings, "ADMIN_REQUIRE_OTP", False))


class FleetAdminSite(admin.AdminSite):
    site_header = "Subscribie fleet admin"
    site_title = "Subscribie fleet admin"
    index_title = "Fleet"

    @property
    def login_form(self):
        if not otp_required():
            return None  # Django's AdminAuthenticationForm
        from subscribie_admin.otp_login import OneDeviceOTPLoginForm

        return OneDeviceOTPLoginForm

    @property
    def login_template(self):
        return OTP_LOGIN_TEMPLATE if otp_required() else None

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return not otp_required() or request.user.is_verified()

    def index(self, request: HttpRequest, extra_context: dict | None = None):
        return super().index(request, {**(extra_context or {}), **dashboard(request)})


def dashboard(request: HttpRequest) -> dict:
    """Fleet state, active rollouts and recent errors, each only for users who may see it.

    A constant number of queries whatever the fleet size.
    """
    from django.db.models import Q

    from audit.models import AuditEvent
    from rollouts import selectors as rollout_selectors
    from rollouts.admin import progress_bar
    from rollouts.models import Rollout
    from sites import selectors as site_selectors

    user = request.user
    context: dict = {}
    if user.has_perm("sites.view_site"):
        context["fleet"] = site_selectors.fleet_overview()
        context["fleet_charts"] = fleet_charts(
            context["fleet"], with_history=user.has_perm("rollouts.view_rollout")
        )
    if user.has_perm("rollouts.view_rollout"):
        active = rollout_selectors.with_target_counts(
            Rollout.objects.filter(status__in=Rollout.ACTIVE_STATUSES).order_by("-created_at")
        )[:10]
        context["active_rollouts"] = [
            (rollout, progress_bar(rollout.n_done + rollout.n_failed, rollout.n_failed,
                                   rollout.n_total), rollout.n_done + rollout.n_failed)
            for rollout in active
        ]  # fmt: skip
        # Drafts awaiting approval or a scheduled start: what will move the fleet next.
        context["waiting_rollouts"] = list(
            Rollout.objects.filter(status=Rollout.Status.DRAFT)
            .filter(Q(approval_required=True, approved_at__isnull=True) | Q(start_at__isnull=False))
            .order_by("start_at", "created_at")[:10]
        )
    if user.has_perm("audit.view_auditevent"):
        context["recent_errors"] = list(
            AuditEvent.objects.filter(result=AuditEvent.Result.ERROR).order_by("-created_at")[:8]
        )
    return context
