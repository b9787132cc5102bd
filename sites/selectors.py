"""Read-only queries about the fleet, shaped for the admin (constant query counts)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Q
from django.utils import timezone

from sites.models import Signup, Site


@dataclass(frozen=True)
class FleetOverview:
    """The fleet at a glance. ``statuses``: (value, label, count) for every status."""

    statuses: list[tuple[str, str, int]]
    images: list[tuple[str, int]]
    total: int
    drift: int
    on_hold: int
    pending_signups: int


def fleet_overview() -> FleetOverview:
    """Counts by status and by image, drift, holds and signups awaiting review: four queries."""
    by_status = dict(
        Site.objects.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    images = list(
        Site.objects.exclude(status=Site.Status.DELETED)
        .order_by()
        .values("image")
        .annotate(n=Count("pk"))
        .order_by("-n", "image")
        .values_list("image", "n")
    )
    flags = Site.objects.exclude(status=Site.Status.DELETED).aggregate(
        drift=Count("pk", filter=~Q(observed_image="") & ~Q(observed_image=F("image"))),
        on_hold=Count(
            "pk",
            filter=~Q(hold_reason="")
            & (Q(hold_until__isnull=True) | Q(hold_until__gt=timezone.now())),
        ),
    )
    return FleetOverview(
        statuses=[(value, label, by_status.get(value, 0)) for value, label in Site.Status.choices],
        images=images,
        total=sum(by_status.values()),
        drift=flags["drift"],
        on_hold=flags["on_hold"],
        pending_signups=Signup.objects.filter(status=Signup.Status.PENDING).count(),
    )
