"""Live status of the sites shown on a page of the Site list (polled by sites/live_status.js).

Read-only, one query for the whole page (at most ``MAX_IDS`` sites), so a list left open in a
browser costs next to nothing while deploys settle.
"""

from __future__ import annotations

from typing import Any

from sites.models import Site

MAX_IDS = 500
# While any shown site is in one of these, the page keeps polling.
UNSETTLED_STATUSES = (Site.Status.APPROVED, Site.Status.DEPLOYING, Site.Status.DELETING)


def parse_ids(raw: str) -> list[int]:
    """``"3,5,8"`` -> ``[3, 5, 8]``; anything that is not a positive integer is ignored."""
    ids = [int(part) for part in raw.split(",") if part.strip().isdigit()]
    return ids[:MAX_IDS]


def site_statuses(ids: list[int]) -> dict[str, Any]:
    rows = Site.objects.filter(pk__in=ids).values_list(
        "pk", "status", "ready_replicas", "desired_replicas", "status_message"
    )
    labels = dict(Site.Status.choices)
    sites = {
        str(pk): {
            "status": status,
            "label": labels.get(status, status),
            "ready": f"{ready}/{desired}",
            "message": message,
        }
        for pk, status, ready, desired, message in rows
    }
    settled = all(site["status"] not in UNSETTLED_STATUSES for site in sites.values())
    return {"sites": sites, "settled": settled}
