"""The invariants a chaos run checks at the end. Each function states its invariant in its
docstring and returns a :class:`Check`; none of them changes anything.

They read the three records of what happened and compare them: kubesim's store, request
journal and availability ledger (what the cluster saw), the database (what the product
believes), and the audit history (what the product says it did).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from kubesim import KubeSim
from kubesim.hooks import WriteRecord

CAUSE = re.compile(r"rollout #(\d+) ")
# Audit actions that move a target (the engine's and staff's).
TARGET_ACTIONS = (
    "target.patched",
    "target.succeeded",
    "target.failed",
    "target.skipped",
    "target.reverted",
    "target.revert_failed",
)
# A target's audit trail, by its final status (actions without the ``target.`` prefix).
SETTLED = {"succeeded", "failed"}
TRAILS: dict[str, list[tuple[str, ...]]] = {
    "succeeded": [("patched", "succeeded")],
    "failed": [("patched", "failed"), ("failed",)],
    "skipped": [(), ("skipped",), ("patched", "skipped")],
    "reverted": [
        ("patched", "reverted"),
        ("patched", "succeeded", "reverted"),
        ("patched", "failed", "reverted"),
    ],
    "revert_failed": [
        ("patched", "revert_failed"),
        ("patched", "succeeded", "revert_failed"),
        ("patched", "failed", "revert_failed"),
    ],
    # Only a rollout cancelled without revert leaves targets in flight.
    "waiting": [("patched",)],
}
# The rollout-level action that must close the trail of a rollout in each final status.
CLOSING = {
    "succeeded": "rollout.succeed",
    "halted": "rollout.halt",
    "cancelled": "rollout.cancel",
    "reverted": "rollout.reverted",
}
PATCH_FAILURE_PREFIXES = ("retries exhausted", "API error", "Deployment missing")


@dataclass(frozen=True)
class Check:
    name: str
    held: bool
    detail: str = ""


def _sample(items: Iterable[object], limit: int = 4) -> str:
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(str(i) for i in items[:limit]) + more


def rollouts_finished(unfinished: dict[int, str]) -> Check:
    """Every rollout ends in a finished status (succeeded, halted, cancelled, reverted):
    paused ones are resumed, and ones whose job died are resumed by the schedule, then end.
    ``unfinished``: ``{rollout id: status}`` of those still active after their time limit."""
    from rollouts.models import Rollout

    statuses = Counter(Rollout.objects.values_list("status", flat=True))
    open_now = {
        pk: status
        for pk, status in Rollout.objects.exclude(status__in=Rollout.FINISHED_STATUSES).values_list(
            "pk", "status"
        )
    }
    stuck = {**unfinished, **open_now}
    detail = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    if stuck:
        detail += f"; not finished: {_sample(f'#{k} {v}' for k, v in stuck.items())}"
    return Check("every rollout ends", not stuck, detail)


def one_patch_per_direction(journal: list[WriteRecord], namespace: str) -> Check:
    """No site is patched twice in one direction of one rollout: among the PATCHes kubesim
    applied, each (rollout, site, image) occurs at most once. A rollout's forward patches set
    ``to_image`` and its revert patches set ``from_image``, so the image names the direction;
    the rollout is named by the change-cause the engine sends. Refused writes (429, 503, a
    dropped connection) changed nothing and do not count; a 500 after the write does."""
    counts: Counter[tuple[int, str, str]] = Counter()
    for w in journal:
        if w.verb != "patch" or w.resource != "deployments" or w.namespace != namespace:
            continue
        match = CAUSE.search(w.change_cause)
        if w.applied and match and w.images:
            counts[(int(match.group(1)), w.name, w.images[0])] += 1
    twice = [f"#{r} {site} -> {image} x{n}" for (r, site, image), n in counts.items() if n > 1]
    refused = sum(1 for w in journal if w.verb == "patch" and not w.applied)
    detail = f"{sum(counts.values())} applied image PATCHes, {refused} refused"
    if twice:
        detail += f"; twice: {_sample(twice)}"
    return Check("no site patched twice per direction", not twice, detail)


def _cluster_images(sim: KubeSim, namespace: str) -> dict[str, str]:
    images = {}
    from kubesim.resources import DEPLOYMENTS

    for obj in sim.store.iter(DEPLOYMENTS.key):
        meta = obj["metadata"]
        if meta["namespace"] != namespace:
            continue
        containers = obj["spec"]["template"]["spec"]["containers"]
        images[meta["name"]] = next(c["image"] for c in containers if c["name"] == "subscribie")
    return images


def _audited_images(initial: str) -> dict[int, str]:
    """The image each site's audit history says it runs: the ``to_image`` of its latest
    target event that changed the Deployment (a patch that failed changed nothing)."""
    from audit.models import AuditEvent
    from sites.models import Site

    images = dict.fromkeys(Site.objects.values_list("pk", flat=True), initial)
    events = AuditEvent.objects.filter(action__in=TARGET_ACTIONS, site__isnull=False).order_by("id")
    for site_id, action, data, message in events.values_list(
        "site_id", "action", "data", "message"
    ):
        if action == "target.skipped" or not data.get("to_image"):
            continue
        if action in ("target.failed", "target.revert_failed") and message.startswith(
            PATCH_FAILURE_PREFIXES
        ):
            continue
        images[site_id] = data["to_image"]
    return images


def images_agree(sim: KubeSim, namespace: str, initial: str) -> Check:
    """Every site's image in the cluster equals ``Site.image`` in the database and the image
    its audit history says it got last."""
    from sites.models import Site

    cluster = _cluster_images(sim, namespace)
    audited = _audited_images(initial)
    wrong = []
    for pk, slug, image in Site.objects.values_list("pk", "slug", "image"):
        seen = cluster.get(slug)
        if not (seen == image == audited.get(pk)):
            wrong.append(f"{slug}: cluster {seen}, database {image}, audit {audited.get(pk)}")
    detail = f"{len(cluster)} sites on {len(set(cluster.values()))} images"
    if wrong:
        detail += f"; disagree: {_sample(wrong)}"
    return Check("cluster = database = audit image", not wrong, detail)


def audit_trails() -> Check:
    """Every target's audit trail is complete and in order: its ``target.*`` events, in id
    order, are one of the sequences allowed for its final status (``TRAILS``), and they fall
    between its rollout's ``rollout.start`` (after ``rollout.create`` and ``rollout.approve``,
    if audited) and the event that closed the rollout (``CLOSING``), which is the rollout's
    last event. Only a
    cancel may be followed by target events: those of the tick that was patching when staff
    cancelled (the engine stops it within one chunk of patches)."""
    from audit.models import AuditEvent
    from rollouts.models import Rollout, RolloutTarget

    trails: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    rollout_events: dict[int, list[tuple[int, str]]] = defaultdict(list)
    events = AuditEvent.objects.filter(rollout__isnull=False).order_by("id")
    for pk, rollout_id, site_id, action in events.values_list(
        "id", "rollout_id", "site_id", "action"
    ):
        if action == "target.retry":
            continue  # a patch put back for the next tick changes nothing; any number may occur
        if action.startswith("notice."):
            continue  # emails about the rollout are sent by their own jobs, after it ends
        if action.startswith("target."):
            trails[(rollout_id, site_id)].append((pk, action.removeprefix("target.")))
        else:
            rollout_events[rollout_id].append((pk, action))
    bad = []
    late = 0
    for rollout in Rollout.objects.only("pk", "status"):
        rows = rollout_events.get(rollout.pk, [])
        closing = CLOSING.get(rollout.status)
        actions = [a for _, a in rows]
        if actions[:1] == ["rollout.create"]:
            rows, actions = rows[1:], actions[1:]
        if actions[:1] == ["rollout.approve"]:  # whole-fleet upgrades start on approval
            rows, actions = rows[1:], actions[1:]
        if not rows or actions[0] != "rollout.start" or closing is None or actions[-1] != closing:
            bad.append(f"#{rollout.pk} {rollout.status}: rollout events {actions}")
            continue
        first, last = rows[0][0], rows[-1][0]
        targets = RolloutTarget.objects.filter(rollout=rollout).values_list("site_id", "status")
        for site_id, status in targets:
            trail = trails.pop((rollout.pk, site_id), [])
            actions = tuple(a for _, a in trail)
            if actions not in TRAILS.get(status, []):
                bad.append(f"#{rollout.pk} site {site_id} {status}: {list(actions)}")
            elif trail and trail[0][0] < first:
                bad.append(f"#{rollout.pk} site {site_id}: target events before the start")
            elif trail and trail[-1][0] > last:
                if rollout.status != "cancelled":
                    bad.append(f"#{rollout.pk} site {site_id}: target events after the end")
                else:  # written by the tick that was patching when staff cancelled
                    late += 1
    bad += [f"#{r} site {s}: events without a target" for (r, s) in trails]
    detail = f"{sum(len(v) for v in rollout_events.values())} rollout events checked"
    if late:
        detail += f", {late} targets settled by the tick in flight at a cancel"
    if bad:
        detail += f"; broken: {_sample(bad)}"
    return Check("audit trail complete, in order", not bad, detail)


def availability(windows: list[tuple[int, dict[str, int], set[str]]]) -> Check:
    """kubesim's availability ledger shows >= 1 available replica for every site at every
    moment of every rollout, except the canary sites of a broken-image rollout during it.
    ``windows``: ``(rollout id, ledger minimum per "namespace/site", excused sites)``."""
    down = [
        f"#{rollout_id} {key} min {n}"
        for rollout_id, minima, excused in windows
        for key, n in minima.items()
        if n < 1 and key.split("/", 1)[1] not in excused
    ]
    excused = sum(len(e) for _, _, e in windows)
    detail = f"{len(windows)} rollouts watched, {excused} broken canaries excused"
    if down:
        detail += f"; unavailable: {_sample(down)}"
    return Check(">= 1 available replica", not down, detail)


def signups_kept(written: set[str], deleted: set[str], revs: dict[str, str]) -> Check:
    """No signup is lost or duplicated: every CouchDB document ever written has exactly one
    Signup row; a deleted one is withdrawn, a live one is stored at the document's current
    revision (an update was not lost either); no Signup row comes from anywhere else."""
    from sites.models import Signup

    rows = Counter(Signup.objects.values_list("couch_id", flat=True))
    by_id = dict(Signup.objects.values_list("couch_id", "couch_rev"))
    statuses = dict(Signup.objects.values_list("couch_id", "status"))
    problems = [f"{i} x{n}" for i, n in rows.items() if n > 1]
    problems += [f"{i} lost" for i in sorted(written - set(rows))]
    problems += [f"{i} unknown" for i in sorted(set(rows) - written)]
    for doc_id in sorted(written & set(rows)):
        if doc_id in deleted:
            if statuses[doc_id] != Signup.Status.WITHDRAWN:
                problems.append(f"{doc_id} deleted but {statuses[doc_id]}")
        elif by_id[doc_id] != revs.get(doc_id):
            problems.append(f"{doc_id} at {by_id[doc_id]}, CouchDB at {revs.get(doc_id)}")
    detail = f"{len(written)} documents, {sum(rows.values())} Signup rows"
    if problems:
        detail += f"; {_sample(problems)}"
    return Check("no signup lost or duplicated", not problems, detail)


def leases_honoured(lease_seconds: int, qcluster_log: str) -> Check:
    """No job is left running past its lease: no engine job reported losing its lease while
    ticking (the engine renews it during a tick and logs a renewal that fails, meaning a
    second job could have ticked beside it); no job went on renewing a rollout's lease for
    more than a lease length after the rollout finished; and once the run is over, no named
    lease (``sites/leases.py``) or signup sync lock is still held."""
    from django.utils import timezone

    from rollouts.models import Rollout
    from sites.models import JobLease, SyncCheckpoint

    now = timezone.now()
    lost = [line.strip() for line in qcluster_log.splitlines() if "lost while ticking" in line]
    lease = timedelta(seconds=lease_seconds)
    held = [
        f"rollout #{pk} ({status}) lease renewed until {until:%H:%M:%S}, "
        f"finished {finished:%H:%M:%S}"
        for pk, status, until, finished in Rollout.objects.filter(
            status__in=Rollout.FINISHED_STATUSES, lease_until__isnull=False
        ).values_list("pk", "status", "lease_until", "finished_at")
        if finished and until > finished + 2 * lease  # renewed over a lease after the end
    ]
    held += [
        f"lease {name} held until {until}"
        for name, until in JobLease.objects.exclude(owner="").values_list("name", "until")
        if until and until > now
    ]
    held += [
        f"sync lock of {db} held"
        for db, until in SyncCheckpoint.objects.exclude(locked_by="").values_list(
            "database", "locked_until"
        )
        if until and until > now
    ]
    detail = f"{Rollout.objects.count()} rollouts, {len(lost)} leases lost mid-tick"
    if lost or held:
        detail += f"; {_sample(lost + held)}"
    return Check("no job past its lease", not (lost or held), detail)
