"""`manage.py refresh_sites`: one status refresh (what the schedule runs every minute)."""

from django.core.management.base import BaseCommand

from sites.services import sites_refresh_status


class Command(BaseCommand):
    help = "Read every site Deployment with one LIST and update site statuses."

    def handle(self, *args, **options):
        summary = sites_refresh_status()
        self.stdout.write(
            f"observed {summary.observed}: live +{len(summary.live)}, "
            f"failed +{len(summary.failed)}, missing +{len(summary.missing)}, "
            f"unmanaged {len(summary.unmanaged)}, "
            f"drift {len(summary.drift)}"
        )
