"""`manage.py sync_signups`: import signup documents from CouchDB's `_changes` feed."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sites.couchdb import CouchDBError
from sites.sync import SyncLocked, couchdb_from_settings, signups_sync

BACKLOG_FOR_PROGRESS_BAR = 1000


class Command(BaseCommand):
    help = "Import new and changed signup documents from CouchDB (cron, or --follow)."

    def add_arguments(self, parser):
        parser.add_argument("--follow", action="store_true", help="keep polling the feed")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, follow: bool, interval: float, batch_size: int, **options):
        with couchdb_from_settings() as client:
            while True:
                self._run_once(client, batch_size)
                if not follow:
                    return
                time.sleep(interval)

    def _run_once(self, client, batch_size: int) -> None:
        bar = None

        def progress(count: int) -> None:
            nonlocal bar
            # Only a real backlog earns a progress bar; cron output stays one line.
            if bar is None and count >= min(batch_size, BACKLOG_FOR_PROGRESS_BAR):
                bar = tqdm(unit="doc", desc="signups", file=self.stderr, leave=False)
            if bar is not None:
                bar.update(count)

        try:
            summary = signups_sync(client=client, batch_size=batch_size, progress=progress)
        except CouchDBError as exc:
            raise CommandError(f"CouchDB: {exc} (checkpoint unchanged; nothing lost)") from exc
        except SyncLocked as exc:
            raise CommandError(f"sync already running: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(summary.line())
        for error in summary.errors:
            self.stderr.write(error)
