"""`manage.py deploy_sites [--sync] [--wait]`: deploy approved sites not yet deployed."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sites.models import Site
from sites.services import site_deploy, sites_deploy_request, sites_refresh_status


class Command(BaseCommand):
    help = "Deploy sites that are approved or stuck deploying; optionally wait until live."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="run the jobs in this process")
        parser.add_argument("--wait", action="store_true", help="wait until each is live/failed")
        parser.add_argument("--timeout", type=float, default=900.0)

    def handle(self, *args, sync: bool, wait: bool, timeout: float, **options):
        sites_deploy_request(
            sites=Site.objects.filter(status=Site.Status.APPROVED), actor="system:cli"
        )
        pending = list(Site.objects.filter(status=Site.Status.DEPLOYING, last_generation=None))
        if sync:
            for site in pending:
                site_deploy(site_id=site.pk)
        ids = [s.pk for s in Site.objects.filter(status=Site.Status.DEPLOYING)]
        self.stdout.write(f"deploying {len(ids)} site(s)")
        if not wait or not ids:
            return
        deadline = time.monotonic() + timeout
        with tqdm(total=len(ids), unit="site", file=self.stderr) as bar:
            while True:
                if sync:
                    sites_refresh_status()
                statuses = dict(Site.objects.filter(pk__in=ids).values_list("pk", "status"))
                settled = [pk for pk, s in statuses.items() if s != Site.Status.DEPLOYING]
                bar.n = len(settled)
                bar.refresh()
                if len(settled) == len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        failed = Site.objects.filter(pk__in=ids).exclude(status=Site.Status.LIVE)
        for site in failed:
            self.stderr.write(f"{site.slug}: {site.status} {site.status_message}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(ids)} site(s) did not go live")
        self.stdout.write(f"{len(ids)} site(s) live")
