"""Rollout admin: the list, the progress page, control buttons and the upgrade/rollback flows.

Thin adapters over ``rollouts.services`` and ``rollouts.selectors``: parse input, check the
permission, call a service, report. Rollouts are never added or edited through forms; they are
created by the flows and moved by the engine. Nothing that changes the fleet happens on one
click, and a GET never changes anything:

- upgrade and rollback of selected sites: strategy form -> preview -> confirm;
- rollback of a rollout: preview (its strategy is the rollout's) -> confirm;
- every preview lists each wave with its sites (and for rollbacks the exact image each goes
  back to), the sites left out and why, and the server-side dry run of the first wave; a plan
  that covers the whole fleet asks for a typed confirmation;
- skip, cancel and cancel-and-revert: a confirmation page naming the sites and what happens to
  them (the Site admin's confirmation page); pause and resume act on their POST.

The only Kubernetes call an admin request makes is the explicit server-side dry-run patch of
the first wave on the preview page (``services.rollout_dry_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from audit.admin import ViewOnlyAdmin
from rollouts import approvals, progress, selectors, services
from rollouts.admin_actions import ROLLBACK, SESSION_KEY, UPGRADE
from rollouts.models import Rollout, RolloutTarget
from rollouts.planner import PlanError, parse_failure_budget, parse_waves
from sites.admin import Confirmation, FleetModelAdmin, confirmed
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
    "waiting_window": "#b8860b",
    "failed": "#ba2121",
    "skipped": "#6c757d",
    "revert_failed": "#ba2121",
    "declined": "#6c757d",
    "expired": "#6c757d",
}
LIVE_TEMPLATE = "admin/rollouts/rollout/_live.html"  # what the page re-renders as it runs
DRY_RUN_LIMIT = 50  # sites of the first wave dry-run on the preview page
# Control buttons: pause and resume act on their POST; the others show a confirmation first.
ONE_CLICK_CONTROLS = ("pause", "resume")
APPROVAL_DECISIONS = ("approve", "decline")  # each shows a confirmation page first
CONFIRMED_CONTROLS = ("cancel", "cancel-revert")


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
    """A rollout's strategy: waves, failure budget, wave deadline, bake, maintenance windows,
    auto-revert (the rollback form; the upgrade form adds the image)."""

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
    bake = forms.IntegerField(
        initial=services.DEFAULT_BAKE,
        required=False,  # blank: no bake
        min_value=0,
        label="bake time (seconds)",
        help_text="a healthy wave must stay healthy this long before the next wave starts; "
        "a site that becomes unavailable meanwhile counts as failed",
    )
    respect_windows = forms.BooleanField(
        initial=False,
        required=False,
        label="respect maintenance windows",
        help_text="patch each site only inside its maintenance window; sites without one at once",
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

    def clean_bake(self) -> int:
        return self.cleaned_data.get("bake") or services.DEFAULT_BAKE


class UpgradeForm(StrategyForm):
    """A strategy, the image to upgrade to, and optionally when to start."""

    field_order = ["image"]  # first, as the form reads: what, then how

    image = forms.CharField(max_length=255, help_text="e.g. subscribie/subscribie:v2")
    start_at = forms.DateTimeField(
        required=False,
        label="start at (UTC)",
        help_text="e.g. 2026-12-24 02:00; empty: at once (or when approved, if it needs "
        "approval). Site owners are emailed when and to what.",
    )

    def clean_start_at(self):
        start_at = self.cleaned_data.get("start_at")
        if start_at is not None and start_at <= timezone.now():
            raise forms.ValidationError("The start time must be in the future.")
        return start_at


class DeclineForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, help_text="told to the creator in the audit history"
    )


@dataclass(frozen=True)
class TypedConfirmation:
    """What a preview covering the whole fleet asks to be typed before it starts anything."""

    name: str  # the POST field
    expected: str
    label: str
    refusal: str  # the error when what was typed does not match

    def matches(self, request: HttpRequest) -> bool:
        return request.POST.get(self.name, "").strip() == self.expected


def typed_image(preview: services.RolloutPreview) -> TypedConfirmation:
    """A whole-fleet upgrade: type the image."""
    return TypedConfirmation(
        name="confirm_image",
        expected=preview.image,
        label="This upgrades the whole fleet. Type the image name to confirm:",
        refusal="Type the image name exactly to upgrade the whole fleet.",
    )


def typed_site_count(preview: services.RolloutPreview) -> TypedConfirmation:
    """A whole-fleet rollback (no single image to type): type how many sites it changes."""
    return TypedConfirmation(
        name="confirm_sites",
        expected=str(preview.total),
        label="This rolls back the whole fleet. Type the number of sites it changes to confirm:",
        refusal="Type the number of sites exactly to roll back the whole fleet.",
    )


def covers_whole_fleet(site_ids: Iterable[int]) -> bool:
    """True when ``site_ids`` hold every site a rollout can change (live or failed)."""
    fleet = set(
        Site.objects.filter(status__in=services.PATCHABLE_SITE_STATUSES).values_list(
            "pk", flat=True
        )
    )
    return bool(fleet) and fleet <= set(site_ids)


def skip_outcome(target: RolloutTarget) -> str:
    """What skipping ``target`` does, for its confirmation page; "" if it cannot be skipped."""
    if target.status in RolloutTarget.UNPATCHED_STATUSES:
        return (
            f"never patched by this rollout: stays on {target.site.image}; "
            "does not count as a failure"
        )
    if target.status == RolloutTarget.Status.WAITING:
        return (
            f"no longer awaited: keeps {target.to_image}, which it was already patched to; "
            "does not count as a failure, and is not put back if the rollout is reverted or "
            "rolled back"
        )
    return ""


def cancel_outcome(target: RolloutTarget, *, revert: bool) -> str:
    """What cancelling (and reverting) its rollout does to ``target``; "" if nothing."""
    status = RolloutTarget.Status
    if target.status in RolloutTarget.UNPATCHED_STATUSES:
        return f"skipped: never patched, stays on {target.site.image}"
    if target.status not in (status.PATCHING, status.WAITING, status.SUCCEEDED, status.FAILED):
        return ""
    if not revert:
        return f"keeps {target.to_image}"
    if target.from_image == target.to_image:
        return f"stays on {target.to_image}, the image it ran before"
    return f"goes back to {target.from_image or 'the image it ran before'}"


@admin.register(Rollout)
class RolloutAdmin(ViewOnlyAdmin, FleetModelAdmin):
    """Rollouts are created only by the flows and moved only by services and the engine.

    ``FleetModelAdmin`` contributes the confirmation page the Site admin's actions use.
    """

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
        return status_badge(rollout.status, rollout.phase)

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
                "<int:rollout_id>/rollback/",
                view(self.rollback_view),
                name="rollouts_rollout_rollback",
            ),
            path(
                "<int:rollout_id>/control/<str:action>/",
                view(self.control_view),
                name="rollouts_rollout_control",
            ),
            path(
                "<int:rollout_id>/approval/<str:decision>/",
                view(self.approval_view),
                name="rollouts_rollout_approval",
            ),
            path(
                "<int:rollout_id>/skip/<int:target_id>/",
                view(self.skip_view),
                name="rollouts_rollout_skip",
            ),
            path("upgrade-all/", view(self.upgrade_all_view), name="rollouts_rollout_upgrade_all"),
            path(
                "<int:rollout_id>/progress.json",
                view(self.progress_view),
                name="rollouts_rollout_progress",
            ),
            *super().get_urls(),
        ]

    # -- progress page ---------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = self._page_context(request, object_id)
        return TemplateResponse(request, "admin/rollouts/rollout/detail.html", context)

    def progress_view(self, request: HttpRequest, rollout_id: int) -> JsonResponse:
        """The page's live part as JSON: the numbers and the re-rendered HTML (polled)."""
        context = self._page_context(request, rollout_id)
        html = render_to_string(LIVE_TEMPLATE, context, request=request)
        return JsonResponse({**progress.progress_payload(context["page"]), "html": html})

    def _page_context(self, request: HttpRequest, object_id) -> dict[str, Any]:
        rollout = get_object_or_404(
            Rollout.objects.select_related("parent", "approved_by"), pk=object_id
        )
        if not self.has_view_permission(request, rollout):
            raise PermissionDenied
        page = progress.rollout_page(rollout, request.GET)
        user = request.user
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": str(rollout),
            "rollout": rollout,
            "bake": selectors.wave_bake(rollout),
            "page": page,
            "progress": page.progress,
            "waves": page.waves,
            "badge": status_badge(rollout.status, rollout.phase),
            "bar": progress_bar(page.progress.settled, page.failed, page.progress.total),
            "refresh": page.active,
            "progress_url": reverse("admin:rollouts_rollout_progress", args=[rollout.pk]),
            "can_control": user.has_perm("rollouts.control_rollout"),
            "can_rollback": user.has_perm(ROLLBACK.perm)
            and rollout.status in (*Rollout.FINISHED_STATUSES,)
            and rollout.status not in (Rollout.Status.DECLINED, Rollout.Status.EXPIRED),
            "status_colours": STATUS_COLOURS,
            "can_review": rollout.awaiting_approval and user.has_perm(approvals.APPROVE_PERM),
            "is_creator": rollout.created_by_id is not None and rollout.created_by_id == user.pk,
        }

    # -- buttons -----------------------------------------------------------------------------

    def control_view(self, request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
        if action in ONE_CLICK_CONTROLS:
            return require_POST(self._control)(request, rollout_id, action)
        if action in CONFIRMED_CONTROLS:
            return self._control(request, rollout_id, action)
        raise Http404(f"no rollout control {action!r}")

    def _control(self, request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
        """Pause or resume on their POST; cancel (and revert) only on a confirmed POST."""
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        if not request.user.has_perm("rollouts.control_rollout"):
            raise PermissionDenied
        revert = action == "cancel-revert"
        if action in CONFIRMED_CONTROLS and not confirmed(request):
            return self._cancel_confirmation(request, rollout, revert=revert)
        operations = {
            "pause": lambda: services.rollout_pause(rollout=rollout, actor=request.user),
            "resume": lambda: services.rollout_resume(rollout=rollout, actor=request.user),
            "cancel": lambda: services.rollout_cancel(rollout=rollout, actor=request.user),
            "cancel-revert": lambda: services.rollout_cancel(
                rollout=rollout, actor=request.user, revert=True
            ),
        }
        try:
            result = operations[action]()
        except services.RolloutError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(self._detail_url(rollout))
        messages.success(request, f"Rollout #{rollout.pk}: {result.status}.")
        return HttpResponseRedirect(self._detail_url(rollout))

    def _cancel_confirmation(
        self, request: HttpRequest, rollout: Rollout, *, revert: bool
    ) -> HttpResponse:
        """The page naming every site of ``rollout`` and what cancelling does to it."""
        cancellable = (Rollout.Status.DRAFT, Rollout.Status.RUNNING, Rollout.Status.PAUSED)
        if rollout.status not in cancellable:
            messages.error(request, f"rollout #{rollout.pk} is {rollout.status}; nothing to cancel")
            return HttpResponseRedirect(self._detail_url(rollout))
        rows: list[tuple[int, tuple[str, str, str]]] = []
        left_alone: list[tuple[str, str]] = []
        targets = (
            rollout.targets.select_related("site")
            .only("id", "status", "from_image", "to_image", "site", "site__slug", "site__image")
            .order_by("wave", "position")
        )
        for target in targets:
            outcome = cancel_outcome(target, revert=revert)
            if outcome:
                rows.append((target.pk, (target.site.slug, target.get_status_display(), outcome)))
            else:
                left_alone.append((target.site.slug, f"already {target.get_status_display()}"))
        what = (
            "stops, and every site it changed goes back to the image it ran before, wave by wave"
            if revert
            else "stops; the sites it already changed keep the image it gave them"
        )
        name = f"rollout #{rollout.pk} ({rollout.kind}"
        name += f" to {rollout.image})" if rollout.image else " to previous images)"
        return self.render_confirmation(
            request,
            Confirmation(
                action="cancel_revert_rollout" if revert else "cancel_rollout",
                title=f"Cancel and revert rollout #{rollout.pk}"
                if revert
                else f"Cancel rollout #{rollout.pk}",
                intro=f"Cancelling {name}: it {what}. Sites it has not patched yet are "
                "skipped. For each site:",
                columns=("Site", "Status", "What happens"),
                rows=rows,
                skipped=left_alone,
                confirm_label=f"Yes, cancel and revert rollout #{rollout.pk}"
                if revert
                else f"Yes, cancel rollout #{rollout.pk}",
                danger=True,
            ),
        )

    def approval_view(self, request: HttpRequest, rollout_id: int, decision: str) -> HttpResponse:
        """Approve or decline a rollout awaiting approval: a GET (or an unconfirmed POST)
        shows the confirmation page; only its confirmed POST acts. The service enforces who
        may (permission, not the creator); the permission is checked here too."""
        if decision not in APPROVAL_DECISIONS:
            raise Http404(f"no approval decision {decision!r}")
        if not request.user.has_perm(approvals.APPROVE_PERM):
            raise PermissionDenied
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        form = DeclineForm(request.POST if confirmed(request) else None)
        if not confirmed(request) or (decision == "decline" and not form.is_valid()):
            if not rollout.awaiting_approval:
                messages.error(request, f"Rollout #{rollout.pk} is {rollout.phase}, not "
                               "awaiting approval.")  # fmt: skip
                return HttpResponseRedirect(self._detail_url(rollout))
            return self._approval_confirmation(request, rollout, decision, form)
        try:
            if decision == "approve":
                approvals.rollout_approve(rollout=rollout, actor=request.user)
            else:
                approvals.rollout_decline(
                    rollout=rollout, actor=request.user, reason=form.cleaned_data["reason"]
                )
        except services.RolloutError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Rollout #{rollout.pk} {decision}d: {rollout.phase}.")
        return HttpResponseRedirect(self._detail_url(rollout))

    def _approval_confirmation(
        self, request: HttpRequest, rollout: Rollout, decision: str, form: forms.Form
    ) -> HttpResponse:
        targets = rollout.targets.count()
        if decision == "approve":
            then = (
                f"starts at {rollout.start_at:%Y-%m-%d %H:%M} UTC (site owners are emailed "
                "when and to what)"
                if rollout.start_at
                else "starts at once"
            )
            intro = f"Approving rollout #{rollout.pk}: it {then}."
        else:
            intro = f"Declining rollout #{rollout.pk}: it never starts; its sites are untouched."
        scope = "the whole fleet, " if rollout.selection == Rollout.Selection.ALL else ""
        return self.render_confirmation(
            request,
            Confirmation(
                action=f"{decision}_rollout",
                title=f"{decision.capitalize()} rollout #{rollout.pk}",
                intro=intro,
                columns=("Rollout", "Upgrade to", "Sites", "Waves", "Created by", "Expires"),
                rows=[(rollout.pk, (
                    f"#{rollout.pk}", rollout.image, f"{scope}{targets}", rollout.waves,
                    rollout.actor_label,
                    f"{rollout.approval_expires_at:%Y-%m-%d %H:%M} UTC"
                    if rollout.approval_expires_at else "",
                ))],
                form=form if decision == "decline" else None,
                confirm_label=f"Yes, {decision} rollout #{rollout.pk}",
                danger=decision == "decline",
            ),
        )  # fmt: skip

    def skip_view(self, request: HttpRequest, rollout_id: int, target_id: int) -> HttpResponse:
        """Skip one site of a rollout: never patched (pending) or no longer awaited (waiting).

        A GET (or an unconfirmed POST) shows what will happen; only the confirmed POST acts.
        """
        if not request.user.has_perm("rollouts.control_rollout"):
            raise PermissionDenied
        target = get_object_or_404(
            RolloutTarget.objects.select_related("site", "rollout"),
            pk=target_id,
            rollout_id=rollout_id,
        )
        rollout, slug = target.rollout, target.site.slug
        if not confirmed(request):
            outcome = skip_outcome(target)
            if not outcome:
                messages.error(
                    request,
                    f"{slug} is {target.get_status_display()} in rollout #{rollout.pk}; only a "
                    "pending or waiting site can be skipped",
                )
                return HttpResponseRedirect(self._detail_url(rollout))
            return self.render_confirmation(
                request,
                Confirmation(
                    action="skip_target",
                    title=f"Skip {slug} in rollout #{rollout.pk}",
                    intro=f"{slug} will be skipped in rollout #{rollout.pk} "
                    f"({rollout.kind}{' to ' + rollout.image if rollout.image else ''}):",
                    columns=("Site", "Status", "What happens"),
                    rows=[(target.pk, (slug, target.get_status_display(), outcome))],
                    confirm_label=f"Yes, skip {slug}",
                ),
            )
        try:
            services.rollout_skip_target(target=target, actor=request.user)
        except services.RolloutError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{slug} skipped.")
        return HttpResponseRedirect(self._detail_url(rollout))

    def upgrade_all_view(self, request: HttpRequest) -> HttpResponse:
        """Start the whole-fleet upgrade flow without ticking sites in the Site list."""
        return UPGRADE.open(request) or self._no_selection(request)

    @staticmethod
    def _detail_url(rollout: Rollout) -> str:
        return reverse("admin:rollouts_rollout_change", args=[rollout.pk])

    # -- the flows: (form ->) preview -> confirm ------------------------------------------------

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
        """What the form and preview pages of the flows that start from a selection show."""
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "selected_count": sites.count(),
            "form": form,
            **extra,
        }

    @staticmethod
    def _confirmed_plan(request: HttpRequest, typed: TypedConfirmation | None) -> bool:
        """True for the preview page's confirming POST, with what ``typed`` asks typed."""
        if request.method != "POST" or request.POST.get("stage") != "confirm":
            return False
        if typed is not None and not typed.matches(request):
            messages.error(request, typed.refusal)
            return False
        return True

    def _preview_context(
        self,
        preview: services.RolloutPreview,
        *,
        wave_timeout: int,
        auto_revert: bool,
        typed: TypedConfirmation | None,
    ) -> dict[str, Any]:
        """What the preview page of every flow shows, with the dry run of the first wave."""
        dry_run_results: list[services.DryRunResult] = []
        dry_run_error = ""
        # The one Kubernetes call an admin request makes, on purpose: the API server's verdict
        # on the first wave's patch, with nothing changed (dryRun=All).
        try:
            dry_run_results = services.rollout_dry_run(preview=preview, limit=DRY_RUN_LIMIT)
        except Exception as exc:  # configuration or connection: show, don't crash
            dry_run_error = f"dry run not possible: {exc}"
        first_wave = len(preview.waves[0]) if preview.waves else 0
        windows = preview.wave_windows or (None,) * len(preview.waves)
        return {
            "preview": preview,
            "waves": [
                (index + 1, [(slug, preview.image_for(slug)) for slug in slugs], windows[index])
                for index, slugs in enumerate(preview.waves)
            ],
            "any_windows": any(w is not None and (w.open_now or w.held) for w in windows),
            "per_site_images": bool(preview.to_images),
            "dry_run_results": dry_run_results,
            "dry_run_error": dry_run_error,
            "dry_run_ok": bool(dry_run_results) and all(r.ok for r in dry_run_results),
            "dry_run_more": max(first_wave - DRY_RUN_LIMIT, 0),
            "wave_timeout": wave_timeout,
            "auto_revert": auto_revert,
            "typed_confirmation": typed,
        }

    # -- upgrade of selected sites or the whole fleet ----------------------------------------

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
                max_failures=data["max_failures"], bake=data["bake"],
                respect_windows=data["respect_windows"],
            )  # fmt: skip
        except PlanError as exc:
            form.add_error(None, str(exc))
            return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
        typed = typed_image(preview) if whole_fleet else None
        if self._confirmed_plan(request, typed):
            rollout = services.rollout_create(
                sites=sites, image=data["image"], waves=data["waves"],
                max_failures=data["max_failures"], wave_timeout=data["wave_timeout"],
                auto_revert=data["auto_revert"], bake=data["bake"],
                respect_windows=data["respect_windows"], actor=request.user,
                whole_fleet=whole_fleet, start_at=data["start_at"],
            )  # fmt: skip
            request.session.pop(SESSION_KEY, None)
            if rollout.approval_required:
                messages.warning(
                    request,
                    f"Rollout #{rollout.pk} awaits approval by a second staff member with "
                    "permission to approve rollouts; staff who can approve were emailed.",
                )
            elif rollout.start_at:
                messages.success(
                    request,
                    f"Rollout #{rollout.pk} scheduled for {rollout.start_at:%Y-%m-%d %H:%M} UTC.",
                )
            else:
                services.rollout_start(rollout=rollout, actor=request.user)
                messages.success(request, f"Rollout #{rollout.pk} started.")
            return HttpResponseRedirect(self._detail_url(rollout))
        context.update(
            self._preview_context(
                preview,
                wave_timeout=data["wave_timeout"],
                auto_revert=data["auto_revert"],
                typed=typed,
            ),
            start_at=data["start_at"],
            needs_approval=approvals.approval_needed(
                kind=Rollout.Kind.UPGRADE, whole_fleet=whole_fleet, targets=preview.total,
                threshold=approvals.approval_threshold(),
            ),
        )  # fmt: skip
        return TemplateResponse(request, "admin/rollouts/preview.html", context)

    # -- rollback of selected sites ------------------------------------------------------------

    def rollback_sites_view(self, request: HttpRequest) -> HttpResponse:
        """Form -> preview -> confirm; each site back to the image before its last upgrade."""
        selection = self._selection(request, ROLLBACK.perm)
        if selection is None:
            return self._no_selection(request)
        mode, sites = selection
        whole_fleet = mode == "all" or covers_whole_fleet(sites.values_list("pk", flat=True))
        stage = request.POST.get("stage", "form") if request.method == "POST" else "form"
        form = StrategyForm(request.POST if request.method == "POST" else None)
        context = self._flow_context(
            request,
            title="Roll back all sites" if mode == "all" else "Roll back selected sites",
            sites=sites,
            form=form,
            rollback=True,
            whole_fleet=whole_fleet,
        )
        if stage == "form" or not form.is_valid():
            return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
        data = form.cleaned_data
        try:
            preview = services.sites_rollback_plan(
                sites=sites, waves=data["waves"], max_failures=data["max_failures"],
                bake=data["bake"], respect_windows=data["respect_windows"],
            )  # fmt: skip
        except PlanError as exc:
            form.add_error(None, str(exc))
            return TemplateResponse(request, "admin/rollouts/upgrade_form.html", context)
        typed = typed_site_count(preview) if whole_fleet else None
        if self._confirmed_plan(request, typed):
            rollout = services.sites_rollback(
                sites=sites, actor=request.user, waves=data["waves"],
                max_failures=data["max_failures"], wave_timeout=data["wave_timeout"],
                auto_revert=data["auto_revert"], bake=data["bake"],
                respect_windows=data["respect_windows"],
            )  # fmt: skip
            request.session.pop(SESSION_KEY, None)
            messages.success(request, f"Rollback #{rollout.pk} started.")
            return HttpResponseRedirect(self._detail_url(rollout))
        context.update(
            self._preview_context(
                preview,
                wave_timeout=data["wave_timeout"],
                auto_revert=data["auto_revert"],
                typed=typed,
            )
        )
        return TemplateResponse(request, "admin/rollouts/preview.html", context)

    # -- rollback of a rollout -----------------------------------------------------------------

    def rollback_view(self, request: HttpRequest, rollout_id: int) -> HttpResponse:
        """Preview -> confirm: every site ``rollout`` changed back to its own earlier image,
        in the rollout's waves and gates (so there is no strategy form)."""
        if not request.user.has_perm(ROLLBACK.perm):
            raise PermissionDenied
        rollout = get_object_or_404(Rollout, pk=rollout_id)
        try:
            preview = services.rollout_rollback_plan(rollout=rollout)
        except services.RolloutError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(self._detail_url(rollout))
        whole_fleet = rollout.selection == Rollout.Selection.ALL or covers_whole_fleet(
            rollout.targets.values_list("site_id", flat=True)
        )
        typed = typed_site_count(preview) if whole_fleet else None
        if self._confirmed_plan(request, typed):
            try:
                rollback = services.rollout_rollback(rollout=rollout, actor=request.user)
            except services.RolloutError as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(self._detail_url(rollout))
            messages.success(request, f"Rollback #{rollback.pk} of rollout #{rollout.pk} started.")
            return HttpResponseRedirect(self._detail_url(rollback))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Roll back rollout #{rollout.pk}",
            "parent": rollout,
            "rollback": True,
            "whole_fleet": whole_fleet,
            **self._preview_context(
                preview,
                wave_timeout=rollout.wave_timeout_seconds,
                auto_revert=rollout.auto_revert,
                typed=typed,
            ),
        }
        return TemplateResponse(request, "admin/rollouts/preview.html", context)
