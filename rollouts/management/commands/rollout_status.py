"""Show a rollout's status and per-wave counts; ``--watch`` follows it until it settles."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rollouts.management.follow import describe, finish, follow
from rollouts.models import Rollout


class Command(BaseCommand):
    help = "Show a rollout's progress (exit 0 only if it succeeded)."

    def add_arguments(self, parser):
        parser.add_argument("rollout_id", type=int)
        parser.add_argument("--watch", action="store_true", help="follow until it settles")

    def handle(self, *args, rollout_id: int, watch: bool, **options):
        try:
            rollout = Rollout.objects.get(pk=rollout_id)
        except Rollout.DoesNotExist:
            raise CommandError(f"no rollout {rollout_id}") from None
        if watch:
            rollout = follow(rollout, sync=False, bar=True, stdout=self.stdout)
            finish(rollout, self.stdout)
            return
        self.stdout.write(describe(rollout))
        if rollout.status != Rollout.Status.SUCCEEDED:
            raise CommandError(f"rollout {rollout.pk} is {rollout.phase}")
