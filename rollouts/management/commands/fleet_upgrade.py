"""Upgrade the fleet (or some sites) to an image in health-gated waves.

    manage.py fleet_upgrade --image subscribie/subscribie:v2 --all --wait

Prints the rollout id. Exit status 0 only on success (with --wait/--sync: the rollout
succeeded; otherwise: it was started, or --dry-run printed the plan).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rollouts import services
from rollouts.management.follow import finish, follow, resolve_actor
from rollouts.planner import PlanError
from sites.models import Site


def select_sites(all_sites: bool, slugs: str | None):
    if all_sites:
        return Site.objects.order_by("slug")
    wanted = [slug.strip() for slug in (slugs or "").split(",") if slug.strip()]
    sites = list(Site.objects.filter(slug__in=wanted).order_by("slug"))
    unknown = sorted(set(wanted) - {site.slug for site in sites})
    if unknown:
        raise CommandError(f"unknown sites: {', '.join(unknown)}")
    if not sites:
        raise CommandError("no sites selected")
    return sites


class Command(BaseCommand):
    help = "Upgrade sites to an image in health-gated waves (a Rollout)."

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="the whole fleet")
        which.add_argument("--sites", help="comma-separated slugs")
        parser.add_argument("--waves", default=services.DEFAULT_WAVES)
        parser.add_argument(
            "--max-failures",
            default=services.DEFAULT_MAX_FAILURES,
            help="a count (5) or percentage (10%%)",
        )
        parser.add_argument(
            "--wave-timeout",
            type=int,
            default=services.DEFAULT_WAVE_TIMEOUT,
            help="seconds per wave",
        )
        parser.add_argument("--no-auto-revert", action="store_true")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument("--wait", action="store_true", help="follow with a progress bar")
        parser.add_argument("--sync", action="store_true", help="run the engine in this process")
        parser.add_argument("--as", dest="username", help="record this user as the actor")
        parser.add_argument(
            "--qps",
            type=float,
            help="with --sync: client-side limit on API calls per second for this run "
            "(default KUBE_QPS; raise it for a large fleet; 0 = off). A 429 from the server "
            "still slows it down.",
        )

    def handle(self, *args, **options):
        if options["qps"] is not None and options["qps"] < 0:
            raise CommandError("--qps must be 0 (no limit) or more")
        sites = select_sites(options["all"], options["sites"])
        actor = resolve_actor(options["username"])
        try:
            if options["dry_run"]:
                preview = services.rollout_plan(
                    sites=sites,
                    image=options["image"],
                    waves=options["waves"],
                    max_failures=options["max_failures"],
                )
                self._print_plan(preview)
                return
            rollout = services.rollout_create(
                sites=sites,
                image=options["image"],
                waves=options["waves"],
                max_failures=options["max_failures"],
                wave_timeout=options["wave_timeout"],
                auto_revert=not options["no_auto_revert"],
                actor=actor,
                whole_fleet=options["all"],
            )
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        services.rollout_start(rollout=rollout, actor=actor, enqueue=not options["sync"])
        self.stdout.write(f"rollout {rollout.pk}")
        if options["sync"] or options["wait"]:
            rollout = follow(
                rollout,
                sync=options["sync"],
                bar=options["wait"],
                stdout=self.stdout,
                qps=options["qps"],
            )
            finish(rollout, self.stdout)

    def _print_plan(self, preview: services.RolloutPreview) -> None:
        self.stdout.write(
            f"dry run: {preview.total} sites to {preview.image} in {len(preview.waves)} waves; "
            f"failure budget {preview.budget} (allows {preview.allowed_failures})"
        )
        for number, slugs in enumerate(preview.waves, start=1):
            self.stdout.write(f"  wave {number}: {len(slugs)} sites: {', '.join(slugs)}")
        for item in preview.left_out:
            self.stdout.write(f"  left out {item.slug}: {item.reason}")
