"""Business operations on signups and sites.

Rules (DESIGN.md, Layering): keyword-only arguments; a service that changes state writes its
AuditEvent in the same transaction and enqueues jobs with ``transaction.on_commit``; status
changes are compare-and-swap; network calls never happen inside a database transaction.
Services named ``*_request`` are what admin actions call: they change rows and enqueue the job
that does the cluster work (admin requests never call Kubernetes inline).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import audit
from cluster.gateway import Cluster, ClusterError
from cluster.manifests import ClusterSettings, SiteSpec, secret_manifest, site_manifests
from cluster.status import DeploymentSnapshot
from cluster.watch import SiteWatch
from sites.leases import lease_acquire, lease_release
from sites.models import Signup, Site
from sites.sync import ClaimedNames, apply_validation

logger = logging.getLogger(__name__)

Actor = Any  # a user, a "system:..." label, or None

# Sites whose cluster objects should exist and be watched by the status refresh.
DEPLOYED_STATUSES = (
    Site.Status.DEPLOYING,
    Site.Status.LIVE,
    Site.Status.FAILED,
    Site.Status.MISSING,
    Site.Status.SUSPENDED,
)
# What the status refresh writes from a cluster reading.
OBSERVED_FIELDS = (
    "status",
    "status_message",
    "observed_image",
    "observed_revision",
    "ready_replicas",
    "desired_replicas",
)
SUSPENDABLE_STATUSES = (Site.Status.LIVE, Site.Status.FAILED)
DEPLOYABLE_STATUSES = (
    Site.Status.APPROVED,
    Site.Status.LIVE,
    Site.Status.FAILED,
    Site.Status.MISSING,
)


def _enqueue(func: str, *args: Any) -> None:
    """Queue a django-q2 job once the surrounding transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(func, *args))


def cluster_settings() -> ClusterSettings:
    return ClusterSettings(
        namespace=settings.SITES_NAMESPACE,
        base_domain=settings.SITES_BASE_DOMAIN,
        progress_deadline_seconds=settings.SITE_PROGRESS_DEADLINE_SECONDS,
    )


def site_spec(site: Site) -> SiteSpec:
    """The site's desired state. Only a verified custom domain is routed."""
    return SiteSpec(
        slug=site.slug,
        title=site.title,
        owner_email=site.owner_email,
        image=site.image,
        theme_name=site.theme_name,
        theme_colour=site.theme_colour,
        custom_domain=site.custom_domain if site.custom_domain_verified else None,
        replicas=0 if site.status == Site.Status.SUSPENDED else 1,
    )


def site_url(site: Site) -> str:
    return f"https://{site.slug}.{settings.SITES_BASE_DOMAIN}"


# --- signups -----------------------------------------------------------------------------------


def signups_approve(*, signups: Iterable[Signup], actor: Actor) -> list[Site]:
    """Approve pending signups: create a Site for each and queue its deploy.

    A signup that is no longer pending (approved twice, withdrawn meanwhile) is skipped.
    """
    from rollouts.selectors import fleet_image

    image = fleet_image()
    created: list[Site] = []
    with transaction.atomic():
        for signup in signups:
            claimed = Signup.objects.filter(pk=signup.pk, status=Signup.Status.PENDING).update(
                status=Signup.Status.APPROVED
            )
            if not claimed:
                continue
            signup.refresh_from_db()
            site = Site.objects.create(
                slug=signup.requested_name,
                title=signup.company_name,
                owner_email=signup.owner_email,
                custom_domain=signup.custom_domain,
                theme_name=signup.theme_name,
                theme_colour=signup.theme_colour,
                maintenance_window=signup.maintenance_window,
                image=image,
                status=Site.Status.DEPLOYING,
                signup=signup,
            )
            audit.record(
                action="signup.approve",
                actor=actor,
                site=site,
                subject=site.slug,
                data={"signup": signup.couch_id, "image": image},
            )
            _enqueue("sites.tasks.deploy_site", site.pk)
            created.append(site)
    return created


def signup_reject(*, signup: Signup, actor: Actor, reason: str) -> bool:
    """Reject a signup for good (written back to CouchDB as ``queue_state: rejected``)."""
    with transaction.atomic():
        reasons = [*signup.reasons, f"rejected by staff: {reason}"] if reason else signup.reasons
        changed = Signup.objects.filter(
            pk=signup.pk, status__in=[Signup.Status.PENDING, Signup.Status.REJECTED]
        ).update(status=Signup.Status.REJECTED, reasons=reasons, writeback=Signup.WriteBack.PENDING)
        if changed:
            audit.record(
                action="signup.reject",
                actor=actor,
                subject=signup.couch_id,
                data={"reason": reason},
            )
            _enqueue("sites.tasks.write_back_signups")
    return bool(changed)


def signup_revalidate(*, signup: Signup, actor: Actor, site_name: str = "") -> Signup:
    """Validate the stored document again, optionally with a staff-chosen site name."""
    with transaction.atomic():
        signup = Signup.objects.select_for_update().get(pk=signup.pk)
        if signup.status not in (Signup.Status.PENDING, Signup.Status.REJECTED):
            return signup
        doc = dict(signup.raw)
        if site_name:
            doc["site_name"] = site_name
        before = signup.status
        apply_validation(signup, doc, claimed=ClaimedNames.load(exclude=[signup.couch_id]))
        signup.save()
        audit.record(
            action="signup.revalidate",
            actor=actor,
            subject=signup.couch_id,
            data={"site_name": site_name, "before": before, "after": signup.status},
            ok=signup.status == Signup.Status.PENDING,
            message="; ".join(signup.reasons),
        )
    return signup


# --- deploy --------------------------------------------------------------------------------------


def sites_deploy_request(*, sites: Iterable[Site], actor: Actor) -> int:
    """Mark sites for (re)deploy and queue the jobs; returns how many were queued."""
    count = 0
    with transaction.atomic():
        for site in sites:
            changed = Site.objects.filter(pk=site.pk, status__in=DEPLOYABLE_STATUSES).update(
                status=Site.Status.DEPLOYING, status_message=""
            )
            if changed:
                audit.record(
                    action="site.deploy", actor=actor, site=site, data={"image": site.image}
                )
                _enqueue("sites.tasks.deploy_site", site.pk)
                count += 1
    return count


def site_deploy(*, site_id: int, cluster: Cluster | None = None) -> bool:
    """The deploy job: apply the site's objects; safe to run twice.

    Acts only on a site in ``deploying``. Server-side apply of the same manifests changes
    nothing the second time, and the Secret is created once and never rotated. The generation
    the apply returned is recorded; the status refresh turns the site live when it rolls out.
    """
    site = Site.objects.filter(pk=site_id, status=Site.Status.DEPLOYING).first()
    if site is None:
        return False
    cluster = cluster or Cluster.from_settings()
    spec = site_spec(site)
    config = cluster_settings()
    try:
        # The values go straight to the cluster; only the Secret's name is kept here.
        created_secret = cluster.ensure_secret(
            secret_manifest(spec, config, values={"SECRET_KEY": secrets.token_urlsafe(48)})
        )
        cause = f"subscribie-admin: deploy {site.slug} image {site.image}"
        generation = cluster.apply_site(site_manifests(spec, config, change_cause=cause))
    except ClusterError as exc:
        with transaction.atomic():
            Site.objects.filter(pk=site.pk, status=Site.Status.DEPLOYING).update(
                status=Site.Status.FAILED, status_message=str(exc)
            )
            audit.record(
                action="site.deploy_failed",
                actor="system:deploy",
                site=site,
                ok=False,
                message=str(exc),
            )
        if exc.transient:
            raise  # let django-q2 retry the job (max_attempts bounds it)
        return False
    with transaction.atomic():
        Site.objects.filter(pk=site.pk, status=Site.Status.DEPLOYING).update(
            last_generation=generation, last_deployed_at=timezone.now()
        )
        audit.record(
            action="site.applied",
            actor="system:deploy",
            site=site,
            data={"image": site.image, "generation": generation, "secret_created": created_secret},
        )
    _enqueue("sites.tasks.watch_deploying")
    return True


WATCHER_LEASE = "sites.watch_deploying"


def sites_watch_deploying(
    *, cluster: Cluster | None = None, max_seconds: float | None = None, poll: float = 1.0
) -> int:
    """Follow freshly deployed sites until they settle; returns how many settled.

    One watcher serves every deploying site with one LIST per look (never one call per site);
    a burst of deploy jobs each enqueue it, and all but the lease holder return at once. Bounded
    by ``SITE_DEPLOY_WATCH_SECONDS``; the scheduled refresh settles anything slower.

    Between looks it waits on the cluster's events (one watch of the site Deployments,
    ``cluster.watch``): the next look comes as soon as a deploying site's Deployment has rolled
    out or failed, or a new site Deployment appears, and at the latest after ``poll`` s (a
    deploy recorded without an event since). Without a live watch it polls, backing off
    from ``DEPLOY_MIN_POLL`` to ``poll``.
    """
    max_seconds = settings.SITE_DEPLOY_WATCH_SECONDS if max_seconds is None else max_seconds
    owner = f"watch-{secrets.token_hex(6)}"
    cluster = cluster or Cluster.from_settings()
    deadline = time.monotonic() + max_seconds
    settled = 0
    watch = SiteWatch(cluster)  # started once we hold the lease
    backoff = min(DEPLOY_MIN_POLL, poll)
    try:
        while time.monotonic() < deadline:
            if not lease_acquire(WATCHER_LEASE, owner=owner, seconds=max_seconds + 30):
                return settled
            watch.start()
            deploying = dict(
                Site.objects.filter(
                    status=Site.Status.DEPLOYING, last_generation__isnull=False
                ).values_list("slug", "last_generation")
            )
            if not deploying:
                lease_release(WATCHER_LEASE, owner=owner)
                # A deploy that finished while we were releasing found the lease held and
                # left: look once more so its site is not left to the minute schedule.
                if not Site.objects.filter(
                    status=Site.Status.DEPLOYING, last_generation__isnull=False
                ).exists():
                    return settled
                continue
            summary = sites_refresh_status(cluster=cluster, slugs=list(deploying))
            done = set(summary.live) | set(summary.failed) | set(summary.missing)
            settled += len(done)
            waiting = {slug: gen for slug, gen in deploying.items() if slug not in done}
            timeout = max(0.0, min(poll, deadline - time.monotonic()))
            if waiting and watch.live:
                watch.wait(waiting, timeout=timeout, settle_all=False, wake_on_new=True)
                backoff = min(DEPLOY_MIN_POLL, poll)
            elif waiting:
                time.sleep(min(backoff, timeout))
                backoff = min(backoff * 2, poll)
        lease_release(WATCHER_LEASE, owner=owner)
    finally:
        watch.stop()
    return settled


DEPLOY_MIN_POLL = 0.02


# --- status refresh ------------------------------------------------------------------------


@dataclass
class RefreshSummary:
    live: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    observed: int = 0


def sites_refresh_status(
    *, cluster: Cluster | None = None, slugs: list[str] | None = None
) -> RefreshSummary:
    """Read every site Deployment with one paged LIST and update the Site rows.

    deploying -> live when rolled out; deploying/live -> failed on ProgressDeadlineExceeded
    (with the condition's message); deployed sites absent from the cluster -> missing.
    Deployments labelled ``subscribie=site`` without a Site are reported as unmanaged.
    With ``slugs``, only those sites are read (one LIST with a set-based selector).
    """
    cluster = cluster or Cluster.from_settings()
    snapshots = cluster.list_sites(slugs)  # the network call, before any transaction
    summary = RefreshSummary(observed=len(snapshots))
    now = timezone.now()
    sites = Site.objects.filter(status__in=DEPLOYED_STATUSES).only(
        *OBSERVED_FIELDS, "slug", "image", "last_generation", "signup_id"
    )
    if slugs is not None:
        sites = sites.filter(slug__in=slugs)
    known = set(Site.objects.exclude(status=Site.Status.DELETED).values_list("slug", flat=True))
    summary.unmanaged = sorted(set(snapshots) - known)
    # Sites with identical new values are written by one UPDATE each, guarded by the status
    # they were read with (compare-and-swap: a staff action in between wins).
    updates: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    transitions: list[tuple[Site, str]] = []
    for site in sites:
        before = site.status
        current = tuple(getattr(site, name) for name in OBSERVED_FIELDS)
        _observe(site, snapshots.get(site.slug))
        if site.slug in snapshots and site.image_drift:
            summary.drift.append(site.slug)
        values = tuple(getattr(site, name) for name in OBSERVED_FIELDS)
        if values != current:
            updates[(before, *values)].append(site.pk)
        if site.status != before:
            transitions.append((site, before))
    with transaction.atomic():
        for (before, *values), pks in updates.items():
            for i in range(0, len(pks), 500):
                Site.objects.filter(pk__in=pks[i : i + 500], status=before).update(
                    **dict(zip(OBSERVED_FIELDS, values, strict=True))
                )
        observed = [slug for slug in snapshots if slug in known]
        for i in range(0, len(observed), 500):
            Site.objects.filter(slug__in=observed[i : i + 500]).update(observed_at=now)
        for site, _before in transitions:
            bucket = {Site.Status.LIVE: summary.live, Site.Status.FAILED: summary.failed}
            bucket.get(site.status, summary.missing).append(site.slug)
        audit.record_many(
            {
                "action": f"site.{site.status}",
                "actor": "system:status",
                "site": site,
                "data": {"before": before, "after": site.status, "image": site.observed_image},
                "ok": site.status == Site.Status.LIVE,
                "message": site.status_message,
            }
            for site, before in transitions
        )
        signup_ids = [s.signup_id for s, _ in transitions if s.status == Site.Status.LIVE]
        signup_ids = [pk for pk in signup_ids if pk]
        if signup_ids:
            Signup.objects.filter(pk__in=signup_ids, writeback=Signup.WriteBack.NONE).update(
                writeback=Signup.WriteBack.PENDING
            )
            _enqueue("sites.tasks.write_back_signups")
    return summary


def _observe(site: Site, snap: DeploymentSnapshot | None) -> None:
    """Apply one cluster reading to a site in memory (the status rules of the refresh)."""
    if snap is None:
        # A deploy that has not applied yet is not missing; anything else deployed is.
        if site.status != Site.Status.DEPLOYING or site.last_generation is not None:
            site.status = Site.Status.MISSING
            site.status_message = "the Deployment is not in the cluster"
        return
    site.observed_image = snap.image or ""
    site.observed_revision = snap.revision
    site.ready_replicas = snap.ready_replicas
    site.desired_replicas = snap.desired_replicas or 0
    if site.status in (Site.Status.DEPLOYING, Site.Status.LIVE, Site.Status.MISSING):
        if snap.state.failed:
            site.status, site.status_message = Site.Status.FAILED, snap.state.message
        elif snap.state.done:
            site.status, site.status_message = Site.Status.LIVE, ""
    elif site.status == Site.Status.FAILED and snap.state.done:
        site.status, site.status_message = Site.Status.LIVE, ""


# --- suspend, resume, delete, hold, domains -----------------------------------------------


def sites_suspend_request(*, sites: Iterable[Site], actor: Actor) -> int:
    return _transition_and_enqueue(
        sites,
        actor,
        from_statuses=SUSPENDABLE_STATUSES,
        to_status=Site.Status.SUSPENDED,
        action="site.suspend",
        task="sites.tasks.scale_site",
        extra_args=(0,),
    )


def sites_resume_request(*, sites: Iterable[Site], actor: Actor) -> int:
    return _transition_and_enqueue(
        sites,
        actor,
        from_statuses=(Site.Status.SUSPENDED,),
        to_status=Site.Status.DEPLOYING,
        action="site.resume",
        task="sites.tasks.scale_site",
        extra_args=(1,),
    )


def sites_delete_request(*, sites: Iterable[Site], actor: Actor) -> int:
    return _transition_and_enqueue(
        sites,
        actor,
        from_statuses=tuple(s for s in Site.Status if s not in (Site.Status.DELETED,)),
        to_status=Site.Status.DELETING,
        action="site.delete",
        task="sites.tasks.delete_site",
    )


def _transition_and_enqueue(
    sites: Iterable[Site],
    actor: Actor,
    *,
    from_statuses: tuple[str, ...],
    to_status: str,
    action: str,
    task: str,
    extra_args: tuple[Any, ...] = (),
) -> int:
    count = 0
    with transaction.atomic():
        for site in sites:
            changed = Site.objects.filter(pk=site.pk, status__in=from_statuses).update(
                status=to_status
            )
            if changed:
                audit.record(
                    action=action,
                    actor=actor,
                    site=site,
                    data={"before": site.status, "after": to_status},
                )
                _enqueue(task, site.pk, *extra_args)
                count += 1
    return count


def site_scale(*, site_id: int, replicas: int, cluster: Cluster | None = None) -> None:
    """Job: scale a suspended (0) or resumed (1) site."""
    site = Site.objects.get(pk=site_id)
    expected = Site.Status.SUSPENDED if replicas == 0 else Site.Status.DEPLOYING
    if site.status != expected:
        return
    generation = (cluster or Cluster.from_settings()).scale_site(site.slug, replicas)
    Site.objects.filter(pk=site.pk, status=expected).update(last_generation=generation)


def site_delete(*, site_id: int, cluster: Cluster | None = None) -> bool:
    """Job: remove the site's objects from the cluster; the row stays, status ``deleted``."""
    site = Site.objects.filter(pk=site_id, status=Site.Status.DELETING).first()
    if site is None:
        return False
    (cluster or Cluster.from_settings()).delete_site(site.slug)
    with transaction.atomic():
        if Site.objects.filter(pk=site.pk, status=Site.Status.DELETING).update(
            status=Site.Status.DELETED, ready_replicas=0
        ):
            audit.record(action="site.deleted", actor="system:delete", site=site)
    return True


def site_set_canary(*, site: Site, canary: bool, actor: Actor) -> bool:
    """Mark a site as a canary (upgraded in the first wave). Writes that one column only, so a
    concurrent job's status change is never overwritten by a stale form."""
    with transaction.atomic():
        changed = Site.objects.filter(pk=site.pk).exclude(canary=canary).update(canary=canary)
        if changed:
            audit.record(action="site.canary", actor=actor, site=site, data={"canary": canary})
    return bool(changed)


def site_set_maintenance_window(*, site: Site, window: str, actor: Actor) -> bool:
    """Set (or with ``""`` clear) a site's weekly maintenance window, stored in canonical form.

    Raises ``sites.windows.WindowError`` (a ValueError with a user-facing message) for text
    that is not a window. Writes that one column only, like :func:`site_set_canary`; audited
    with the old and new value. Returns whether it changed.
    """
    from sites.windows import format_window, parse_window

    text = window.strip()
    canonical = format_window(parse_window(text)) if text else ""
    with transaction.atomic():
        before = (
            Site.objects.select_for_update()
            .filter(pk=site.pk)
            .values_list("maintenance_window", flat=True)
            .first()
        )
        changed = (
            Site.objects.filter(pk=site.pk)
            .exclude(maintenance_window=canonical)
            .update(maintenance_window=canonical)
        )
        if changed:
            audit.record(
                action="site.maintenance_window", actor=actor, site=site,
                data={"before": before or "", "after": canonical},
            )  # fmt: skip
    site.maintenance_window = canonical
    return bool(changed)


def sites_hold(*, sites: Iterable[Site], actor: Actor, reason: str, until: datetime | None) -> int:
    """Keep sites out of new rollouts until ``until`` (None: until released)."""
    if not reason.strip():
        raise ValueError("a hold needs a reason")
    count = 0
    with transaction.atomic():
        for site in sites:
            Site.objects.filter(pk=site.pk).update(
                hold_reason=reason.strip()[:200], hold_until=until
            )
            audit.record(
                action="site.hold",
                actor=actor,
                site=site,
                data={"reason": reason, "until": until.isoformat() if until else None},
            )
            count += 1
    return count


def sites_unhold(*, sites: Iterable[Site], actor: Actor) -> int:
    count = 0
    with transaction.atomic():
        for site in sites:
            if (
                Site.objects.filter(pk=site.pk)
                .exclude(hold_reason="")
                .update(hold_reason="", hold_until=None)
            ):
                audit.record(action="site.unhold", actor=actor, site=site)
                count += 1
    return count


def sites_verify_domain(*, sites: Iterable[Site], actor: Actor) -> int:
    """Mark custom domains verified and redeploy so the Ingress routes them."""
    count = 0
    with transaction.atomic():
        for site in sites:
            if not site.custom_domain:
                continue
            if Site.objects.filter(pk=site.pk, custom_domain_verified=False).update(
                custom_domain_verified=True
            ):
                audit.record(
                    action="site.verify_domain",
                    actor=actor,
                    site=site,
                    data={"domain": site.custom_domain},
                )
                count += 1
    sites_deploy_request(
        sites=Site.objects.filter(pk__in=[s.pk for s in sites], custom_domain_verified=True),
        actor=actor,
    )
    return count
