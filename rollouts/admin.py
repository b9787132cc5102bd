"""Rollout admin: the list, the progress page, control buttons and the upgrade/rollback flows.

Thin adapters over ``rollouts.services`` and ``rollouts.selectors``: parse input, check the
permission, call a service, report. Rollouts are never added or edited through forms; they are
created by the flows (upgrade form -> preview -> confirm) and moved by the engine. The only
Kubernetes call an admin request makes is the explicit server-side dry-run patch of the first
wave on the preview page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from audit.admin import ViewOnlyAdmin
from rollouts import selectors, services
from rollouts.admin_actions import ROLLBACK, SESSION_KEY, UPGRADE
from rollouts.models import Rollout, RolloutTarget
from rollouts.planner import PlanError, parse_failure_budget, parse_waves
from sites.models import Site

STATUS_COLOURS = {
    "draft": "#6c757d",
    "running": "#0b63c5",
    "paused": "#b8860b",
    "succeeded": "#1e7e34",
    "halted": "#ba2121",
    "cancelled": "#6c757d",
    "reverting": "#b8500b",
    "reverted": "#8a2be2",
    "pending": "#6c757d",
    "patching": "#0b63c5",
    "waiting": "#0b63c5",
    "failed": "#ba2121",
    "skipped": "#6c757d",
    "revert_failed": "#ba2121",
}
DRY_RUN_LIMIT = 50  # sites of the first wave dry-run on the preview page


def status_badge(status: str, label: str = "") -> str:
    return format_html(
        '<span class="rollout-badge" style="background:{};color:#fff;padding:1px 6px;'
        'border-radius:8px;white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(status, "#6c757d"),
        label or status,
    )


def progress_bar(done: int, failed: int, total: int) -> str:
    percent = round(100 * done / total) if total else 100
    failed_percent = round(100 * failed / total) if total else 0
    return format_html(
        '<div class="rollout-progress" title="{}%" style="width:140px;background:#eee;height:10px;'
        'border-radius:5px;overflow:hidden;display:flex"><div style="width:{}%;background:#1e7e34">'
        '</div><div style="width:{}%;background:#ba2121"></div></div>',
        percent,
        max(percent - failed_percent, 0),
        failed_percent,
    )


class StrategyForm(forms.Form):
    """A rollout's strategy: waves, failure budget, wave deadline, auto-revert (rollback form)."""

    waves = forms.CharField(
        initial=services.DEFAULT_WAVES, help_text="cumulative: canaries first, last is 100%"
    )
    max_failures = forms.CharField(
        initial=services.DEFAULT_MAX_FAILURES,
        label="failure budget",
        help_text="a count (5) or a percentage (10%)",
    )
    wave_timeout = forms.IntegerField(
        initial=services.DEFAULT_WAVE_TIMEOUT, min_value=1, label="wave deadline (seconds)"
    )
    auto_revert = forms.BooleanField(initial=True, required=False)

    def _parsed(self, name: str, parse: Callable[[str], object]) -> str:
        """The field's value if ``parse`` accepts it; its PlanError becomes the field's error."""
        try:
            parse(self.cleaned_data[name])
        except PlanError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data[name]

    def clean_waves(self) -> str:
        return self._parsed("waves", parse_waves)

    def clean_max_failures(self) -> str:
        return self._parsed("max_failures", parse_failure_budget)


class UpgradeForm(StrategyForm):
    """A strategy and the image to upgrade to."""

    field_order = ["image"]  # first, as the form reads: what, then how

    image = forms.CharField(max_length=255, help_text="e.g. subscribie/subscribie:v2")


@admin.register(Rollout)
class RolloutAdmin(ViewOnlyAdmin):
    """Rollouts are created only by the flows and moved only by services and the engine."""

    list_display = (
        "id",
        "kind",
        "target",
        "badge",
        "progress",
        "counts",
        "actor_label",
        "created_at",
    )
    list_display_links = ("id", "target")
    list_filter = ("status", "kind", "selection")
    search_fields = ("image", "actor_label")
    list_per_page = 50
    change_form_template = "admin/rollouts/rollout/detail.html"

    def get_queryset(self, request):
        # Counts for the progress column come from one aggregate query for the whole page.
        return selectors.with_target_counts(super().get_queryset(request))

    @admin.display(description="image")
    def target(self, rollout: Rollout) -> str:
        if rollout.kind == Rollout.Kind.ROLLBACK:
            return f"rollback of #{rollout.parent_id}" if rollout.parent_id else "rollback"
        return rollout.image

    @admin.display(description="status", ordering="status")
    def badge(self, rollout: Rollout) -> str:
        return status_badge(rollout.status)

    @admin.display(description="progress")
    def progress(self, rollout: Rollout) -> str:
        return progress_bar(rollout.n_done + rollout.n_failed, rollout.n_failed, rollout.n_total)

    @admin.display(description="done / failed / total")
    def counts(self, rollout: Rollout) -> str:
        return f"{rollout.n_done} / {rollout.n_failed} / {rollout.n_total}"

    # -- urls ------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upgrade/", view(self.upgrade_view), name="rollouts_rollout_upgrade"),
            path(
                "rollback-sites/",
                view(self.rollback_sites_view),
                name="rollouts_rollout_rollback_sites",
            ),
            path(
                "<int:rollout_id>/control/<str:action>/",
                view(self.control_view),
                name="rollouts_rollout_control",
            ),
            path(
                "<int:rollout_id>/skip/<int:target_id>/",
                view(self.skip_view),
                name="rollouts_rollout_skip",
            ),
            path("upgrade-all/", view(self.upgrade_all_view), name="rollouts_rollout_upgrade_all"),
            *super().get_urls(),
        ]

    # -- progress page ---------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        rollout = get_object_or_404(Rollout.objects.select_related("parent"), pk=object_id)
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        progress = selectors.rollout_progress(rollout)
        targets = list(selectors.rollout_targets(rollout))
        by_wave: dict[int, list[RolloutTarget]] = {}
        for target in targets:
            by_wave.setdefault(target.wave, []).append(target)
        user = request.user
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": str(rollout),
            "rollout": rollout,
            "progress": progress,
            "waves": [(wave, by_wave.get(wave.number - 1, [])) for wave in progress.waves],
            "badge": status_badge(rollout.status),
            "bar": progress_bar(
                progress.settled,
                progress.count("failed") + progress.count("revert_failed"),
                progress.total,
            ),
            "refresh": rollout.status in Rollout.ACTIVE_STATUSES,
            "can_control": user.has_perm("rollouts.control_rollout"),
            "can_rollback": user.has_perm("rollouts.rollback_rollout")
            and rollout.status in (*Rollout.FINISHED_STATUSES,),
            "status_colours": STATUS_COLOURS,
        }
        return TemplateResponse(request, "admin/rollouts/rollout/detail.html", context)

    # -- buttons -----------------------------------------------------------------------------

    def control_view(self, request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
        return require_POST(self._control)(request, rollout_id, action)

    def _control(self, request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        perm = "rollouts.rollback_rollout" if action == "rollback" else "rollouts.control_rollout"
        if not request.user.has_perm(perm):
            raise PermissionDenied
        operations = {
            "pause": lambda: services.rollout_pause(rollout=rollout, actor=request.user),
            "resume": lambda: services.rollout_resume(rollout=rollout, actor=request.user),
            "cancel": lambda: services.rollout_cancel(rollout=rollout, actor=request.user),
            "cancel-revert": lambda: services.rollout_cancel(
                rollout=rollout, actor=request.user, revert=True
            ),
            "rollback": lambda: services.rollout_rollback(rollout=rollout, actor=request.user),
        }
        if action not in operations:
            return HttpResponse(status=404)
        try:
            result = operations[action]()
        except services.RolloutError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(self._detail_url(rollout))
        if action == "rollback":
            messages.success(request, f"Rollback #{result.pk} of rollout #{rollout.pk} started.")
            return HttpResponseRedirect(self._detail_url(result))
        messages.success(request, f"Rollout #{rollout.pk}: {result.status}.")
        return HttpResponseRedirect(self._detail_url(rollout))

    def skip_view(self, request: HttpRequest, rollout_id: int, target_id: int) -> HttpResponse:
        return require_POST(self._skip)(request, rollout_id, target_id)

    def _skip(self, request: HttpRequest, rollout_id: int, target_id: int) -> HttpResponse:
        """Skip one site of a rollout: never patched (pending) or no longer awaited (waiting)."""
        if not request.user.has_perm("rollouts.control_rollout"):
            raise PermissionDenied
        target = get_object_or_404(
            RolloutTarget.objects.select_related("site", "rollout"),
            pk=target_id,
            rollout_id=rollout_id,
        )
        try:
            services.rollout_skip_target(target=target, actor=request.user)
        except services.RolloutError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{target.site.slug} skipped.")
        return HttpResponseRedirect(self._detail_url(target.rollout))

    def upgrade_all_view(self, request: HttpRequest) -> HttpResponse:
        """Start the whole-fleet upgrade flow without ticking sites in the Site list."""
        return UPGRADE.open(request) or self._no_selection(request)

    @staticmethod
    def _detail_url(rollout: Rollout) -> str:
        return reverse("admin:rollouts_rollout_change", args=[rollout.pk])

    # -- upgrade flow: form -> preview -> confirm ----------------------------------------------

    def _selection(self, request: HttpRequest, perm: str) -> tuple[str, Any] | None:
        """``(mode, sites)`` a Site action remembered for a flow needing ``perm``; None if none.

        Raises PermissionDenied without ``perm``.
        """
        if not request.user.has_perm(perm):
            raise PermissionDenied
        selection = request.session.get(SESSION_KEY)
        if not selection:
            return None
        sites = Site.objects.all()
        if selection["mode"] != "all":
            sites = sites.filter(pk__in=selection["ids"])
        return selection["mode"], sites.order_by("slug")

    @staticmethod
    def _no_selection(request: HttpRequest) -> HttpResponse:
        messages.error(request, "Select sites in the Site list first.")
        return HttpResponseRedirect(reverse("admin:sites_site_changelist"))

    def _flow_context(
        self, request: HttpRequest, *, title: str, sites, form: forms.Form, **extra: Any
    ) -> dict[str, Any]:
        """What the form and preview pages of both flows show."""
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "selected_count": sites.count(),
            "form": form,
            **extra,
        }

    def upgrade_view(self, request: HttpRequest) -> HttpResponse:
        selection = self._selection(request, UPGRADE.perm)
        if selection is None:
            return self._no_selection(request)
        mode, sites = selection
        whole_fleet = mode == "all"
        stage = request.POST.get("stage", "form") if request.method == "POST" else "form"
        form = UpgradeForm(request.POST if request.method == "POST" else None)
        context = self._flow_context(
            request,
            title="Upgrade all sites" if whole_fleet else "Upgrade selected sites",
            sites=sites,
            form=form,
            whole_fleet=whole_fleet,
        )
        if stage == "form" or not form.is_valid():
            return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
        data = form.cleaned_data
        try:
            preview = services.rollout_plan(
                sites=sites, image=data["image"], waves=data["waves"],
                max_failures=data["max_failures"],
            )  # fmt: skip
        except PlanError as exc:
            form.add_error(None, str(exc))
            return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
        if stage == "confirm":
            typed = request.POST.get("confirm_image", "").strip()
            if whole_fleet and typed != preview.image:
                messages.error(request, "Type the image name exactly to upgrade the whole fleet.")
            else:
                rollout = services.rollout_create(
                    sites=sites, image=data["image"], waves=data["waves"],
                    max_failures=data["max_failures"], wave_timeout=data["wave_timeout"],
                    auto_revert=data["auto_revert"], actor=request.user,
                    whole_fleet=whole_fleet,
                )  # fmt: skip
                services.rollout_start(rollout=rollout, actor=request.user)
                request.session.pop(SESSION_KEY, None)
                messages.success(request, f"Rollout #{rollout.pk} started.")
                return HttpResponseRedirect(self._detail_url(rollout))
        context.update(self._preview_context(preview, dry_run=True))
        return TemplateResponse(request, "admin/rollouts/preview.html", context)

    def _preview_context(self, preview: services.RolloutPreview, *, dry_run: bool) -> dict:
        first_wave = list(preview.waves[0][:DRY_RUN_LIMIT]) if preview.waves else []
        dry_run_results: list[services.DryRunResult] = []
        dry_run_error = ""
        if dry_run and first_wave:
            # The one Kubernetes call an admin request makes, on purpose: the API server's
            # verdict on the first wave's patch, with nothing changed (dryRun=All).
            try:
                dry_run_results = services.rollout_dry_run(slugs=first_wave, image=preview.image)
            except Exception as exc:  # configuration or connection: show, don't crash
                dry_run_error = f"dry run not possible: {exc}"
        return {
            "preview": preview,
            "waves": [(index + 1, slugs) for index, slugs in enumerate(preview.waves)],
            "dry_run_results": dry_run_results,
            "dry_run_error": dry_run_error,
            "dry_run_ok": bool(dry_run_results) and all(r.ok for r in dry_run_results),
        }

    # -- rollback of selected sites -----------------------------------------------------------

    def rollback_sites_view(self, request: HttpRequest) -> HttpResponse:
        selection = self._selection(request, ROLLBACK.perm)
        if selection is None:
            return self._no_selection(request)
        _, sites = selection
        form = StrategyForm(request.POST if request.method == "POST" else None)
        context = self._flow_context(
            request, title="Roll back selected sites", sites=sites, form=form, rollback=True
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if request.POST.get("stage") == "confirm":
                rollout = services.sites_rollback(
                    sites=sites, actor=request.user, waves=data["waves"],
                    max_failures=data["max_failures"], wave_timeout=data["wave_timeout"],
                    auto_revert=data["auto_revert"],
                )  # fmt: skip
                request.session.pop(SESSION_KEY, None)
                messages.success(request, f"Rollback #{rollout.pk} started.")
                return HttpResponseRedirect(self._detail_url(rollout))
            preview = services.sites_rollback_plan(
                sites=sites, waves=data["waves"], max_failures=data["max_failures"]
            )
            context.update(self._preview_context(preview, dry_run=False))
            return TemplateResponse(request, "admin/rollouts/preview.html", context)
        return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
