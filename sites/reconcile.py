"""Three-way reconciliation: CouchDB signup documents, Site rows, and the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.gateway import Cluster
from sites.couchdb import CouchDB
from sites.models import Signup, Site
from sites.services import DEPLOYED_STATUSES, sites_deploy_request

ACTOR = "system:reconcile"


@dataclass
class ReconcileReport:
    never_imported: list[str] = field(default_factory=list)
    missing_in_cluster: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def sections(self):
        return [
            ("signups never imported", self.never_imported),
            ("sites missing in the cluster", self.missing_in_cluster),
            ("unmanaged deployments", self.unmanaged),
            ("image drift (expected -> running)", self.drift),
        ]


def _all_doc_ids(client: CouchDB, batch: int = 1000) -> set[str]:
    ids: set[str] = set()
    since = None
    while True:
        page = client.changes(since=since, limit=batch)
        ids.update(c.id for c in page.results if not c.deleted and not c.id.startswith("_design/"))
        if len(page.results) < batch:
            return ids
        since = page.last_seq


def sites_reconcile(*, client: CouchDB, cluster: Cluster | None = None, fix: bool = False):
    """Compare the three sources; with ``fix``, queue re-deploys of sites missing in the cluster.

    One read of the feed, one query per table and one paged LIST of the cluster.
    """
    cluster = cluster or Cluster.from_settings()
    report = ReconcileReport()
    doc_ids = _all_doc_ids(client)
    known = set(Signup.objects.values_list("couch_id", flat=True))
    report.never_imported = sorted(doc_ids - known)
    snapshots = cluster.list_sites()
    sites = {s.slug: s for s in Site.objects.exclude(status=Site.Status.DELETED)}
    deployed = {slug: s for slug, s in sites.items() if s.status in DEPLOYED_STATUSES}
    missing = [s for slug, s in deployed.items() if slug not in snapshots]
    report.missing_in_cluster = sorted(s.slug for s in missing)
    report.unmanaged = sorted(set(snapshots) - set(sites))
    report.drift = sorted(
        f"{slug}: {site.image} -> {snapshots[slug].image}"
        for slug, site in deployed.items()
        if slug in snapshots and snapshots[slug].image != site.image
    )
    if fix and missing:
        sites_deploy_request(sites=missing, actor=ACTOR)
        report.fixed = report.missing_in_cluster
    return report
