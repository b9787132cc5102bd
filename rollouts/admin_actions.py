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

from dataclasses import dataclass

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

SESSION_KEY = "rollouts.selection"


@dataclass(frozen=True)
class _Flow:
    """A rollout flow a Site action opens: the permission it needs and its admin view."""

    perm: str
    what: str  # "You do not have permission to <what>."
    view: str

    def open(self, request, *, ids: list[int] | None = None):
        """Remember ``ids`` (None: the whole fleet) and redirect to the flow's view.

        Without the permission nothing is remembered and the action stays on the list.
        """
        if not request.user.has_perm(self.perm):
            messages.error(request, f"You do not have permission to {self.what}.")
            return None
        mode = "all" if ids is None else "selected"
        request.session[SESSION_KEY] = {"mode": mode, "ids": ids or []}
        return HttpResponseRedirect(reverse(f"admin:{self.view}"))


UPGRADE = _Flow("rollouts.start_rollout", "start fleet upgrades", "rollouts_rollout_upgrade")
ROLLBACK = _Flow("rollouts.rollback_rollout", "roll back sites", "rollouts_rollout_rollback_sites")


def _ids(queryset) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


@admin.action(description="Upgrade selected sites…")
def upgrade_selected_sites(modeladmin, request, queryset):
    return UPGRADE.open(request, ids=_ids(queryset))


@admin.action(description="Upgrade all sites…")
def upgrade_all_sites(modeladmin, request, queryset):
    """Ignores the selection: the whole fleet (the confirmation asks for the image name)."""
    return UPGRADE.open(request)


@admin.action(description="Roll back selected sites…")
def rollback_selected_sites(modeladmin, request, queryset):
    return ROLLBACK.open(request, ids=_ids(queryset))
