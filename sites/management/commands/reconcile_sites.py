"""`manage.py reconcile_sites [--fix]`: CouchDB signups vs Site rows vs the cluster."""

from django.core.management.base import BaseCommand, CommandError

from sites.couchdb import CouchDBError
from sites.reconcile import sites_reconcile
from sites.sync import couchdb_from_settings


class Command(BaseCommand):
    help = "Report signups never imported, missing sites, unmanaged deployments and image drift."

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="re-apply sites missing in the cluster"
        )

    def handle(self, *args, fix: bool, **options):
        try:
            with couchdb_from_settings() as client:
                report = sites_reconcile(client=client, fix=fix)
        except CouchDBError as exc:
            raise CommandError(f"CouchDB: {exc}") from exc
        for title, rows in report.sections():
            self.stdout.write(f"{title}: {len(rows)}")
            for row in rows:
                self.stdout.write(f"  {row}")
        if fix:
            self.stdout.write(f"re-applied: {len(report.fixed)}")
