"""The fleet's image distribution over its last rollouts, for the dashboard's stacked area.

Worked backwards from today's distribution: before a rollout, every site it moved (targets
that ended ``succeeded``) ran the target's ``from_image`` instead of its ``to_image``. Reverted
or failed-and-reverted targets moved nothing. Two queries whatever the fleet size: the last
rollouts, and one aggregate of their moves. Sites approved after a point are counted with the
image they were created with (their history starts with them), so early points can only
under-count, never invent images.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count

from rollouts.models import Rollout, RolloutTarget

HISTORY_ROLLOUTS = 8


@dataclass(frozen=True)
class DistributionHistory:
    points: list[str]  # x labels, oldest first; the last is "now"
    images: dict[str, list[int]]  # image -> sites on it at each point (order of first use)


def image_history(current: dict[str, int], limit: int = HISTORY_ROLLOUTS) -> DistributionHistory:
    rollouts = list(
        Rollout.objects.exclude(status=Rollout.Status.DRAFT)
        .exclude(started_at=None)
        .order_by("-started_at", "-id")
        .only("id", "started_at", "kind")[:limit]
    )
    moves: dict[int, Counter] = {r.pk: Counter() for r in rollouts}
    rows = (
        RolloutTarget.objects.filter(
            rollout_id__in=list(moves), status=RolloutTarget.Status.SUCCEEDED
        )
        .exclude(from_image="")
        .values_list("rollout_id", "from_image", "to_image")
        .annotate(n=Count("id"))
        .order_by()
    )
    for rollout_id, from_image, to_image, n in rows:
        moves[rollout_id][from_image] += n
        moves[rollout_id][to_image] -= n
    states = [Counter(current)]
    for rollout in rollouts:  # newest first: undo each one's moves
        before = Counter(states[-1])
        before.update(moves[rollout.pk])
        states.append(Counter({image: n for image, n in before.items() if n > 0}))
    states.reverse()  # oldest first
    labels = [f"before #{rollouts[-1].pk}"] if rollouts else []
    labels += [f"#{r.pk} {r.started_at:%d %b}" for r in reversed(rollouts)]
    if labels:
        labels[-1] = "now"
    else:
        labels = ["now"]
    order: list[str] = []
    for state in states:
        order.extend(image for image in sorted(state) if image not in order)
    return DistributionHistory(
        points=labels, images={image: [state.get(image, 0) for state in states] for image in order}
    )
