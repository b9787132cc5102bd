"""Roll back a rollout (every site it changed to its recorded image) or selected sites (each
to the image before its last upgrade). Never a relative ``rollout undo``; twice is a no-op.

    manage.py fleet_rollback --rollout 12 --wait
    manage.py fleet_rollback --sites shop-a,shop-b --sync
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rollouts import services
from rollouts.management.commands.fleet_upgrade import select_sites
from rollouts.management.follow import finish, follow, resolve_actor
from rollouts.models import Rollout


class Command(BaseCommand):
    help = "Roll back a rollout or selected sites to their previous images."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--rollout", type=int, help="id of the rollout to roll back")
        which.add_argument("--sites", help="comma-separated slugs")
        parser.add_argument("--wait", action="store_true", help="follow with a progress bar")
        parser.add_argument("--sync", action="store_true", help="run the engine in this process")
        parser.add_argument("--as", dest="username", help="record this user as the actor")

    def handle(self, *args, **options):
        actor = resolve_actor(options["username"])
        enqueue = not options["sync"]
        try:
            if options["rollout"] is not None:
                try:
                    parent = Rollout.objects.get(pk=options["rollout"])
                except Rollout.DoesNotExist:
                    raise CommandError(f"no rollout {options['rollout']}") from None
                rollout = services.rollout_rollback(rollout=parent, actor=actor, enqueue=enqueue)
            else:
                sites = select_sites(False, options["sites"])
                rollout = services.sites_rollback(sites=sites, actor=actor, enqueue=enqueue)
        except (services.RolloutError, services.PlanError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"rollout {rollout.pk}")
        if rollout.status == Rollout.Status.SUCCEEDED:  # nothing to do: already rolled back
            self.stdout.write(rollout.status_message)
            return
        if options["sync"] or options["wait"]:
            rollout = follow(rollout, sync=options["sync"], bar=options["wait"], stdout=self.stdout)
            finish(rollout, self.stdout)
