"""Staff screens for signups and sites: thin adapters over ``sites.services``.

Every action checks its own permission, shows a confirmation page first when it is bulk or
destructive (nothing changes until that page is POSTed back with its CSRF token), calls one
service and reports counts. Nothing here talks to Kubernetes or CouchDB: the services queue
jobs for that. Signup documents are hostile user input, so they are only ever rendered through
``format_html`` / auto-escaping templates, never ``mark_safe``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from rollouts.admin_actions import (
    rollback_selected_sites,
    upgrade_all_sites,
    upgrade_selected_sites,
)
from sites import selectors, services
from sites.history import site_image_history
from sites.live_status import parse_ids, site_statuses
from sites.models import Signup, Site
from sites.windows import WindowError, format_window, parse_window

# Fleet upgrade / rollback flows, contributed by the rollouts app.
ROLLOUT_ACTIONS = (upgrade_selected_sites, upgrade_all_sites, rollback_selected_sites)
# The rollout actions check these themselves; the Site admin also hides them without them.
ROLLOUT_ACTION_PERMISSIONS = {
    "upgrade_selected_sites": "rollouts.start_rollout",
    "upgrade_all_sites": "rollouts.start_rollout",
    "rollback_selected_sites": "rollouts.rollback_rollout",
}

CONFIRMATION_TEMPLATE = "admin/sites/action_confirmation.html"

SIGNUP_COLOURS = {
    Signup.Status.PENDING: "#0b63c5",
    Signup.Status.REJECTED: "#ba2121",
    Signup.Status.APPROVED: "#1e7e34",
    Signup.Status.WITHDRAWN: "#6c757d",
}
SITE_COLOURS = {
    Site.Status.APPROVED: "#6c757d",
    Site.Status.DEPLOYING: "#0b63c5",
    Site.Status.LIVE: "#1e7e34",
    Site.Status.FAILED: "#ba2121",
    Site.Status.SUSPENDED: "#c05f00",
    Site.Status.DELETING: "#6f42c1",
    Site.Status.DELETED: "#343a40",
    Site.Status.MISSING: "#b02a6b",
}


def badge(value: str, label: str, colour: str) -> str:
    return format_html(
        '<span class="status-badge status-{}" style="background:{};color:#fff;'
        'padding:1px 8px;border-radius:9px;white-space:nowrap">{}</span>',
        value,
        colour,
        label,
    )


def pretty_json(value: Any) -> str:
    """A JSON value as an escaped ``<pre>`` block (the value is untrusted user input)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', text)


def plural(count: int, singular: str, many: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


# --- confirmation pages ------------------------------------------------------------------------


@dataclass
class Confirmation:
    """What a confirmation page shows: the rows the action will act on, and what it skips."""

    action: str
    title: str
    intro: str
    columns: Sequence[str]
    rows: Sequence[tuple[Any, Sequence[Any]]]  # (pk, cells)
    skipped: Sequence[tuple[str, str]] = ()  # (name, why)
    form: forms.Form | None = None
    confirm_label: str = "Yes, I'm sure"
    danger: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def confirmed(request: HttpRequest) -> bool:
    """True when the request is the POST of a confirmation page (not the changelist's)."""
    return request.method == "POST" and request.POST.get("post") == "yes"


def require_perm(request: HttpRequest, perm: str) -> None:
    """Belt and braces: the admin hides actions without permission; refuse them here too."""
    if not request.user.has_perm(perm):
        raise PermissionDenied


class FleetModelAdmin(admin.ModelAdmin):
    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj) -> str:
        """Django's row checkbox without a form widget per row: the same markup, but rendering
        a widget template per row was a third of a 100-row changelist's time (bench pages)."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )

    def render_confirmation(self, request: HttpRequest, page: Confirmation) -> TemplateResponse:
        opts = self.model._meta
        media = self.media + (page.form.media if page.form is not None else forms.Media())
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "app_label": opts.app_label,
            "title": page.title,
            "page": page,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": media,
            **page.extra,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            [
                f"admin/{opts.app_label}/{opts.model_name}/{page.action}_confirmation.html",
                CONFIRMATION_TEMPLATE,
            ],
            context,
        )

    def report_skipped(self, request: HttpRequest, skipped: Sequence[tuple[str, str]]) -> None:
        if skipped:
            shown = "; ".join(f"{name} ({why})" for name, why in skipped[:20])
            more = f"; and {len(skipped) - 20} more" if len(skipped) > 20 else ""
            self.message_user(
                request, f"Skipped {plural(len(skipped), 'item')}: {shown}{more}.", messages.WARNING
            )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit history and written back to the signup document.",
    )


class HoldForm(forms.Form):
    reason = forms.CharField(
        max_length=200, strip=True, help_text="Why these sites stay out of new rollouts."
    )
    until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Optional expiry (server time zone); empty means until released.",
    )

    def clean_until(self):
        until = self.cleaned_data.get("until")
        if until is not None and until <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return until


# --- signups -----------------------------------------------------------------------------------


SIGNUP_READONLY = (
    "company_name",
    "maintenance_window",
    "status_badge",
    "owner_email",
    "custom_domain",
    "theme_name",
    "theme_colour",
    "received_at",
    "updated_at",
    "site_links",
    "reasons_list",
    "pending_change_pretty",
    "couch_id",
    "couch_rev",
    "raw_pretty",
    "writeback",
    "writeback_error",
)


@admin.register(Signup)
class SignupAdmin(FleetModelAdmin):
    list_display = ("company_name", "requested_name", "owner_email", "status_badge", "received_at")
    list_display_links = ("company_name", "requested_name")
    list_filter = ("status", "received_at")
    search_fields = ("company_name", "requested_name", "owner_email", "couch_id")
    list_per_page = 100
    actions = ["approve_signups", "reject_signups", "revalidate_signups"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "company_name",
                    "requested_name",
                    "status_badge",
                    "owner_email",
                    "custom_domain",
                    ("theme_name", "theme_colour"),
                    "maintenance_window",
                    ("received_at", "updated_at"),
                    "site_links",
                )
            },
        ),
        ("Validation", {"fields": ("reasons_list", "pending_change_pretty")}),
        (
            "CouchDB document",
            {"fields": ("couch_id", "couch_rev", "raw_pretty", "writeback", "writeback_error")},
        ),
    )

    # -- display --

    @admin.display(description="status", ordering="status")
    def status_badge(self, signup: Signup) -> str:
        return badge(
            signup.status, signup.get_status_display(), SIGNUP_COLOURS.get(signup.status, "#555")
        )

    @admin.display(description="document")
    def raw_pretty(self, signup: Signup) -> str:
        return pretty_json(signup.raw)

    @admin.display(description="reasons")
    def reasons_list(self, signup: Signup) -> str:
        reasons = signup.reasons if isinstance(signup.reasons, list) else [signup.reasons]
        if not reasons:
            return "-"
        items = format_html_join("", "<li>{}</li>", ((str(reason),) for reason in reasons))
        return format_html('<ul style="margin:0;padding-left:1.2em">{}</ul>', items)

    @admin.display(description="pending change")
    def pending_change_pretty(self, signup: Signup) -> str:
        if signup.pending_change is None:
            return "-"
        return pretty_json(signup.pending_change)

    @admin.display(description="sites")
    def site_links(self, signup: Signup) -> str:
        sites = list(signup.sites.only("pk", "slug"))
        if not sites:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:sites_site_change", args=[site.pk]), site.slug) for site in sites),
        )

    # -- permissions and form --

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # signups come from CouchDB

    def has_delete_permission(self, request: HttpRequest, obj: Signup | None = None) -> bool:
        return False  # never dropped: the audit trail and the write-back depend on them

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.approve_signup")

    def has_reject_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.reject_signup")

    def get_readonly_fields(self, request: HttpRequest, obj: Signup | None = None):
        # Only the site name of a signup still under review may be fixed by staff.
        if obj is not None and obj.status in (Signup.Status.PENDING, Signup.Status.REJECTED):
            return SIGNUP_READONLY
        return (*SIGNUP_READONLY, "requested_name")

    def save_model(self, request: HttpRequest, obj: Signup, form, change: bool) -> None:
        """A new site name is a re-validation, done by the service (never a bare save)."""
        if not change or "requested_name" not in form.changed_data:
            return
        signup = services.signup_revalidate(
            signup=obj, actor=request.user, site_name=obj.requested_name.strip()
        )
        obj.refresh_from_db()
        if signup.status == Signup.Status.PENDING:
            self.message_user(
                request, f"Re-validated: the site will be named {signup.requested_name!r}."
            )
        else:
            self.message_user(
                request,
                "Re-validated, still not valid: " + "; ".join(map(str, signup.reasons)),
                messages.WARNING,
            )

    # -- actions --

    @admin.action(description="Approve selected signups…", permissions=["approve"])
    def approve_signups(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        require_perm(request, "sites.approve_signup")
        signups = list(queryset.order_by("received_at", "pk"))
        names = [s.requested_name for s in signups if s.status == Signup.Status.PENDING]
        existing = set(Site.objects.filter(slug__in=names).values_list("slug", flat=True))
        chosen_names: set[str] = set()
        ready: list[Signup] = []
        skipped: list[tuple[str, str]] = []
        for signup in signups:
            name, slug = str(signup), signup.requested_name
            if signup.status != Signup.Status.PENDING:
                skipped.append((name, f"status {signup.get_status_display()}"))
            elif not slug:
                skipped.append((name, "no site name"))
            elif slug in existing:
                skipped.append((name, f"a site named {slug} already exists"))
            elif slug in chosen_names:
                skipped.append((name, f"another selected signup is also named {slug}"))
            else:
                chosen_names.add(slug)
                ready.append(signup)
        if not ready:
            self.message_user(request, "None of the selected signups can be approved.")
            self.report_skipped(request, skipped)
            return None
        if not confirmed(request):
            rows = [
                (
                    s.pk,
                    (
                        s.requested_name,
                        s.company_name,
                        services.site_url(Site(slug=s.requested_name)),
                        s.owner_email,
                    ),
                )
                for s in ready
            ]
            return self.render_confirmation(
                request,
                Confirmation(
                    action="approve_signups",
                    title="Approve signups",
                    intro=f"{plural(len(ready), 'site')} will be created and deployed:",
                    columns=("Site", "Title", "URL", "Owner"),
                    rows=rows,
                    skipped=skipped,
                    confirm_label=f"Yes, approve {plural(len(ready), 'signup')}",
                ),
            )
        try:
            created = services.signups_approve(signups=ready, actor=request.user)
        except IntegrityError:
            self.message_user(
                request,
                "Nothing was approved: a site name or custom domain was taken meanwhile. "
                "Re-validate the signups and try again.",
                messages.ERROR,
            )
            return None
        self.message_user(
            request,
            f"Approved {plural(len(created), 'signup')}; deploy queued for: "
            + (", ".join(site.slug for site in created) or "none")
            + ".",
        )
        if len(created) < len(ready):
            self.message_user(
                request,
                f"{plural(len(ready) - len(created), 'signup')} were no longer pending.",
                messages.WARNING,
            )
        self.report_skipped(request, skipped)
        return None

    @admin.action(description="Reject selected signups…", permissions=["reject"])
    def reject_signups(self, request: HttpRequest, queryset) -> TemplateResponse | None:
        require_perm(request, "sites.reject_signup")
        signups = list(queryset.order_by("received_at", "pk"))
        open_statuses = (Signup.Status.PENDING, Signup.Status.REJECTED)
        rejectable = [s for s in signups if s.status in open_statuses]
        skipped = [
            (str(s), f"status {s.get_status_display()}") for s in signups if s not in rejectable
        ]
        if not rejectable:
            self.message_user(request, "None of the selected signups can be rejected.")
            self.report_skipped(request, skipped)
            return None
        form = ReasonForm(request.POST if confirmed(request) else None, prefix="confirm")
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            count = sum(
                services.signup_reject(signup=signup, actor=request.user, reason=reason)
                for signup in rejectable
            )
            self.message_user(request, f"Rejected {plural(count, 'signup')}.")
            if count < len(rejectable):
                self.message_user(
                    request,
                    f"{plural(len(rejectable) - count, 'signup')} changed meanwhile and "
                    "were left alone.",
                    messages.WARNING,
                )
            self.report_skipped(request, skipped)
            return None
        return self.render_confirmation(
            request,
            Confirmation(
                action="reject_signups",
                title="Reject signups",
                intro=f"{plural(len(rejectable), 'signup')} will be rejected for good "
                "(the signup documents are marked rejected in CouchDB):",
                columns=("Company", "Requested name", "Owner", "Status", "Document"),
                rows=[
                    (
                        s.pk,
                        (
                            s.company_name,
                            s.requested_name,
                            s.owner_email,
                            s.get_status_display(),
                            s.couch_id,
                        ),
                    )
                    for s in rejectable
                ],
                skipped=skipped,
                form=form,
                confirm_label=f"Reject {plural(len(rejectable), 'signup')}",
                danger=True,
            ),
        )

    @admin.action(description="Re-validate selected signups", permissions=["change"])
    def revalidate_signups(self, request: HttpRequest, queryset) -> None:
        require_perm(request, "sites.change_signup")
        open_statuses = (Signup.Status.PENDING, Signup.Status.REJECTED)
        valid = invalid = 0
        skipped: list[tuple[str, str]] = []
        for signup in queryset.order_by("received_at", "pk"):
            if signup.status not in open_statuses:
                skipped.append((str(signup), f"status {signup.get_status_display()}"))
                continue
            result = services.signup_revalidate(signup=signup, actor=request.user)
            if result.status == Signup.Status.PENDING:
                valid += 1
            else:
                invalid += 1
        self.message_user(
            request,
            f"Re-validated {plural(valid + invalid, 'signup')}: "
            f"{valid} valid (pending review), {invalid} still rejected.",
        )
        self.report_skipped(request, skipped)


# --- sites -------------------------------------------------------------------------------------


def site_page_context(object_id: str) -> dict[str, Any]:
    """History and cluster status for the site page (``{}`` for an unknown id: Django's 404)."""
    from django.conf import settings

    from rollouts.selectors import active_rollout_for_site

    site = (
        Site.objects.filter(pk=object_id).only("pk", "status").first()
        if str(object_id).isdigit()
        else None
    )
    if site is None:
        return {}
    return {
        "site_history": site_image_history(site.pk),
        "site_status_badge": badge(
            site.status, site.get_status_display(), SITE_COLOURS[site.status]
        ),
        "site_namespace": settings.SITES_NAMESPACE,
        "site_active_rollout": active_rollout_for_site(site.pk),
    }


class OnHoldFilter(admin.SimpleListFilter):
    title = "on hold"
    parameter_name = "on_hold"

    def lookups(self, request, model_admin):
        return (("yes", "On hold"), ("no", "Not on hold"))

    def queryset(self, request, queryset):
        held = ~Q(hold_reason="") & (Q(hold_until__isnull=True) | Q(hold_until__gt=timezone.now()))
        if self.value() == "yes":
            return queryset.filter(held)
        if self.value() == "no":
            return queryset.exclude(held)
        return queryset


class ImageFilter(admin.SimpleListFilter):
    """Filter by image, with the choices the fleet overview already counted (one scan of the
    sites table per page instead of two; ``?image=`` as before)."""

    title = "image"
    parameter_name = "image"

    def lookups(self, request, model_admin):
        images = sorted(row["image"] for row in model_admin.fleet_overview(request)["images"])
        return [(image, image) for image in images]

    def queryset(self, request, queryset):
        return queryset.filter(image=self.value()) if self.value() else queryset


SITE_FIELDSETS = (
    (
        None,
        {
            "fields": (
                "slug",
                "title",
                "status_badge",
                "status_message",
                "owner_email",
                "site_link",
                "signup_link",
            )
        },
    ),
    (
        "Image",
        {
            "fields": (
                "image_with_drift",
                "observed_image",
                "observed_revision",
                "replicas",
                "last_generation",
                ("last_deployed_at", "observed_at"),
            )
        },
    ),
    ("Rollouts", {"fields": ("canary", "maintenance_window", "hold_reason", "hold_until")}),
    (
        "Domain and theme",
        {"fields": ("custom_domain", "custom_domain_verified", ("theme_name", "theme_colour"))},
    ),
    ("Record", {"fields": (("created_at", "updated_at"),)}),
)


# Staff edit only these; save_model writes each through its service (one column, audited).
SITE_EDITABLE_FIELDS = ("canary", "maintenance_window")


def _flatten(fieldsets) -> list[str]:
    names: list[str] = []
    for _, options in fieldsets:
        for entry in options["fields"]:
            names.extend(entry if isinstance(entry, tuple) else (entry,))
    return names


@admin.register(Site)
class SiteAdmin(FleetModelAdmin):
    list_display = (
        "slug",
        "title",
        "status_badge",
        "image_with_drift",
        "replicas",
        "last_deployed_at",
        "hold",
    )
    list_filter = ("status", "canary", OnHoldFilter, ImageFilter)
    search_fields = ("slug", "title", "owner_email", "custom_domain", "image")
    # No column follows a relation, so the page is one query whatever its length; keep it so
    # (tests/test_sites_admin.py compares 5 against 50 sites).
    list_select_related = ()
    list_per_page = 100
    fieldsets = SITE_FIELDSETS
    readonly_fields = tuple(
        name for name in _flatten(SITE_FIELDSETS) if name not in SITE_EDITABLE_FIELDS
    )
    actions = [
        "deploy_sites",
        "suspend_sites",
        "resume_sites",
        "delete_sites",
        "hold_sites",
        "unhold_sites",
        "verify_domains",
        *ROLLOUT_ACTIONS,
    ]

    # -- display --

    @admin.display(description="status", ordering="status")
    def status_badge(self, site: Site) -> str:
        return badge(site.status, site.get_status_display(), SITE_COLOURS[site.status])

    @admin.display(description="image", ordering="image")
    def image_with_drift(self, site: Site) -> str:
        if site.image_drift:
            return format_html(
                '{} <span class="image-drift" title="the cluster runs {}" '
                'style="color:#ba2121;white-space:nowrap">⚠ drift: {}</span>',
                site.image,
                site.observed_image,
                site.observed_image,
            )
        return site.image

    @admin.display(description="ready")
    def replicas(self, site: Site) -> str:
        return f"{site.ready_replicas}/{site.desired_replicas}"

    @admin.display(description="hold", ordering="hold_reason")
    def hold(self, site: Site) -> str:
        if not site.hold_reason:
            return ""
        if not site.on_hold():
            return format_html('<span style="color:#6c757d">expired: {}</span>', site.hold_reason)
        until = f" (until {site.hold_until:%Y-%m-%d %H:%M})" if site.hold_until else ""
        return format_html("⏸ {}{}", site.hold_reason, until)

    @admin.display(description="URL")
    def site_link(self, site: Site) -> str:
        url = services.site_url(site)
        return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', url, url)

    @admin.display(description="signup")
    def signup_link(self, site: Site) -> str:
        if site.signup_id is None:
            return "-"
        url = reverse("admin:sites_signup_change", args=[site.signup_id])
        return format_html('<a href="{}">{}</a>', url, site.signup)

    # -- overview --

    def fleet_overview(self, request: HttpRequest | None = None) -> dict[str, Any]:
        """The selector's counts, with the status badges the list uses (once per request: the
        overview and the image filter both read it)."""
        cached = getattr(request, "_fleet_overview", None)
        if cached is not None:
            return cached
        overview = selectors.fleet_overview()
        statuses = [
            {"value": value, "label": label, "count": count,
             "badge": badge(value, label, SITE_COLOURS[value])}
            for value, label, count in overview.statuses
        ]  # fmt: skip
        images = [{"image": image, "count": count} for image, count in overview.images]
        result = {"statuses": statuses, "images": images, "total": overview.total}
        if request is not None:
            request._fleet_overview = result
        return result

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            **(extra_context or {}),
            "fleet_overview": self.fleet_overview(request),
            "status_colours_json": json.dumps(SITE_COLOURS),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        status = path(
            "statuses.json",
            self.admin_site.admin_view(self.statuses_view),
            name="sites_site_statuses",
        )
        return [status, *super().get_urls()]

    def statuses_view(self, request: HttpRequest) -> JsonResponse:
        """Status of the listed sites, polled by the list while deploys settle."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(site_statuses(parse_ids(request.GET.get("ids", ""))))

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        """The site's page, with what Kubernetes last reported and its image history."""
        extra_context = {**(extra_context or {}), **site_page_context(object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- permissions and form --

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sites come from approved signups

    def has_delete_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        return False  # rows are kept; "Delete selected sites…" removes them from the cluster

    def has_deploy_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.deploy_site")

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.suspend_site")

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.remove_site")

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.hold_site")

    def has_verify_domain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sites.verify_domain")

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        for name, perm in ROLLOUT_ACTION_PERMISSIONS.items():
            if name in actions and not request.user.has_perm(perm):
                del actions[name]
        return actions

    def get_form(self, request: HttpRequest, obj: Site | None = None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        def clean_maintenance_window(self) -> str:
            """Blank, or the canonical text of a valid window; else what is wrong with it."""
            text = (self.cleaned_data.get("maintenance_window") or "").strip()
            try:
                return format_window(parse_window(text)) if text else ""
            except WindowError as exc:
                raise forms.ValidationError(str(exc)) from None

        if "maintenance_window" in form.base_fields:
            form.clean_maintenance_window = clean_maintenance_window
        return form

    def save_model(self, request: HttpRequest, obj: Site, form, change: bool) -> None:
        """Only ``canary`` and ``maintenance_window`` are editable; each is written as that
        one column so a concurrent job's status change is never overwritten by a stale form."""
        if not change:
            return
        if "canary" in form.changed_data:
            services.site_set_canary(site=obj, canary=obj.canary, actor=request.user)
        if "maintenance_window" in form.changed_data:
            services.site_set_maintenance_window(
                site=obj, window=obj.maintenance_window, actor=request.user
            )

    # -- actions --

    def _site_action(
        self,
        request: HttpRequest,
        queryset,
        *,
        action: str,
        perm: str,
        eligible: Callable[[Site], bool],
        why_not: Callable[[Site], str],
        run: Callable[[list[Site], dict[str, Any]], int],
        done: Callable[[int, int], str],
        title: str = "",
        intro: str = "",
        confirm_label: str = "",
        form_class: type[forms.Form] | None = None,
        danger: bool = False,
        confirm: bool = True,
        columns: Sequence[str] = ("Site", "Title", "Status", "Image", "URL"),
        cells: Callable[[Site], Iterable[Any]] | None = None,
    ) -> TemplateResponse | None:
        require_perm(request, perm)
        sites = list(queryset.order_by("slug"))
        chosen = [site for site in sites if eligible(site)]
        skipped = [(site.slug, why_not(site)) for site in sites if not eligible(site)]
        if not chosen:
            self.message_user(request, f"{title or 'This action'}: nothing to do.")
            self.report_skipped(request, skipped)
            return None
        form = None
        if form_class is not None:
            form = form_class(request.POST if confirmed(request) else None, prefix="confirm")
        if not confirm or (confirmed(request) and (form is None or form.is_valid())):
            count = run(chosen, form.cleaned_data if form is not None else {})
            self.message_user(request, done(count, len(chosen)))
            if count < len(chosen):
                self.message_user(
                    request,
                    f"{plural(len(chosen) - count, 'site')} changed meanwhile and were left alone.",
                    messages.WARNING,
                )
            self.report_skipped(request, skipped)
            return None
        cells = cells or (
            lambda s: (s.slug, s.title, s.get_status_display(), s.image, services.site_url(s))
        )
        return self.render_confirmation(
            request,
            Confirmation(
                action=action,
                title=title,
                intro=intro.format(sites=plural(len(chosen), "site")),
                columns=columns,
                rows=[(site.pk, tuple(cells(site))) for site in chosen],
                skipped=skipped,
                form=form,
                confirm_label=confirm_label.format(sites=plural(len(chosen), "site")),
                danger=danger,
            ),
        )

    @admin.action(description="Deploy / redeploy selected sites…", permissions=["deploy"])
    def deploy_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="deploy_sites",
            perm="sites.deploy_site",
            eligible=lambda s: s.status in services.DEPLOYABLE_STATUSES,
            why_not=lambda s: f"status {s.get_status_display()}",
            run=lambda sites, _: services.sites_deploy_request(sites=sites, actor=request.user),
            done=lambda n, _: f"Queued a deploy of {plural(n, 'site')}.",
            title="Deploy sites",
            intro="{sites} will be (re)deployed with their current image:",
            confirm_label="Yes, deploy {sites}",
        )

    @admin.action(description="Suspend selected sites…", permissions=["suspend"])
    def suspend_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="suspend_sites",
            perm="sites.suspend_site",
            eligible=lambda s: s.status in services.SUSPENDABLE_STATUSES,
            why_not=lambda s: f"status {s.get_status_display()}",
            run=lambda sites, _: services.sites_suspend_request(sites=sites, actor=request.user),
            done=lambda n, _: f"Suspending {plural(n, 'site')} (scaled to zero).",
            title="Suspend sites",
            intro="{sites} will be scaled to zero and go offline:",
            confirm_label="Yes, suspend {sites}",
            danger=True,
        )

    @admin.action(description="Resume selected sites", permissions=["suspend"])
    def resume_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="resume_sites",
            perm="sites.suspend_site",
            eligible=lambda s: s.status == Site.Status.SUSPENDED,
            why_not=lambda s: "not suspended",
            run=lambda sites, _: services.sites_resume_request(sites=sites, actor=request.user),
            done=lambda n, _: f"Resuming {plural(n, 'site')}.",
            title="Resume sites",
            confirm=False,
        )

    @admin.action(description="Delete selected sites from the cluster…", permissions=["remove"])
    def delete_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="delete_sites",
            perm="sites.remove_site",
            eligible=lambda s: s.status != Site.Status.DELETED,
            why_not=lambda s: "already deleted",
            run=lambda sites, _: services.sites_delete_request(sites=sites, actor=request.user),
            done=lambda n, _: f"Deleting {plural(n, 'site')} from the cluster.",
            title="Delete sites",
            intro="{sites} will be removed from the cluster (Deployment, Service, "
            "Ingress and Secret). Their records stay here for the audit history.",
            confirm_label="Yes, delete {sites}",
            danger=True,
            columns=("Site", "Title", "Status", "URL", "Custom domain", "Owner"),
            cells=lambda s: (
                s.slug,
                s.title,
                s.get_status_display(),
                services.site_url(s),
                s.custom_domain,
                s.owner_email,
            ),
        )

    @admin.action(description="Put selected sites on hold…", permissions=["hold"])
    def hold_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="hold_sites",
            perm="sites.hold_site",
            eligible=lambda s: s.status != Site.Status.DELETED,
            why_not=lambda s: "deleted",
            run=lambda sites, data: services.sites_hold(
                sites=sites, actor=request.user, reason=data["reason"], until=data["until"]
            ),
            done=lambda n, _: f"Put {plural(n, 'site')} on hold.",
            title="Hold sites",
            intro="{sites} will be left out of new rollouts until the hold expires or is released:",
            confirm_label="Hold {sites}",
            form_class=HoldForm,
            columns=("Site", "Title", "Status", "Image", "Current hold"),
            cells=lambda s: (
                s.slug,
                s.title,
                s.get_status_display(),
                s.image,
                s.hold_reason if s.on_hold() else "",
            ),
        )

    @admin.action(description="Release hold on selected sites", permissions=["hold"])
    def unhold_sites(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="unhold_sites",
            perm="sites.hold_site",
            eligible=lambda s: bool(s.hold_reason),
            why_not=lambda s: "not on hold",
            run=lambda sites, _: services.sites_unhold(sites=sites, actor=request.user),
            done=lambda n, _: f"Released the hold on {plural(n, 'site')}.",
            title="Release holds",
            confirm=False,
        )

    @admin.action(
        description="Verify custom domains of selected sites…", permissions=["verify_domain"]
    )
    def verify_domains(self, request: HttpRequest, queryset):
        return self._site_action(
            request,
            queryset,
            action="verify_domains",
            perm="sites.verify_domain",
            eligible=lambda s: bool(s.custom_domain) and not s.custom_domain_verified,
            why_not=lambda s: "already verified" if s.custom_domain else "no custom domain",
            run=lambda sites, _: services.sites_verify_domain(sites=sites, actor=request.user),
            done=lambda n, _: (
                f"Verified {plural(n, 'custom domain')}; "
                "their sites are queued for redeploy so the Ingress routes them."
            ),
            title="Verify custom domains",
            intro="Confirm that DNS for these domains points at the fleet; {sites} will then be "
            "redeployed so their Ingress routes the domain:",
            confirm_label="Yes, verify {sites}",
            columns=("Site", "Custom domain", "Status", "URL"),
            cells=lambda s: (
                s.slug,
                s.custom_domain,
                s.get_status_display(),
                services.site_url(s),
            ),
        )
