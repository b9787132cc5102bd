"""Site admin actions that start the rollout flows (the Site admin registers these).

Thin adapters: check the permission, remember the selection in the session (a selection can be
thousands of ids, too many for a URL) and redirect to the rollout views in ``rollouts.admin``,
which render the form -> preview -> confirm pages. No Kubernetes call happens here.

Wire them up in the Site admin with::

    from rollouts import admin_actions

    actions = [
        admin_actions.upgrade_selected_sites,
        admin_actions.upgrade_all_sites,
        admin_actions.rollback_selected_sites,
    ]
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

SESSION_KEY = "rollouts.selection"


def _remember(request, *, mode: str, ids: list[int] | None = None) -> None:
    request.session[SESSION_KEY] = {"mode": mode, "ids": ids or []}


def _denied(request, perm: str, what: str) -> bool:
    if request.user.has_perm(perm):
        return False
    messages.error(request, f"You do not have permission to {what}.")
    return True


@admin.action(description="Upgrade selected sites…")
def upgrade_selected_sites(modeladmin, request, queryset):
    if _denied(request, "rollouts.start_rollout", "start fleet upgrades"):
        return None
    _remember(request, mode="selected", ids=list(queryset.values_list("pk", flat=True)))
    return HttpResponseRedirect(reverse("admin:rollouts_rollout_upgrade"))


@admin.action(description="Upgrade all sites…")
def upgrade_all_sites(modeladmin, request, queryset):
    """Ignores the selection: the whole fleet (the confirmation asks for the image name)."""
    if _denied(request, "rollouts.start_rollout", "start fleet upgrades"):
        return None
    _remember(request, mode="all")
    return HttpResponseRedirect(reverse("admin:rollouts_rollout_upgrade"))


@admin.action(description="Roll back selected sites…")
def rollback_selected_sites(modeladmin, request, queryset):
    if _denied(request, "rollouts.rollback_rollout", "roll back sites"):
        return None
    _remember(request, mode="selected", ids=list(queryset.values_list("pk", flat=True)))
    return HttpResponseRedirect(reverse("admin:rollouts_rollout_rollback_sites"))
