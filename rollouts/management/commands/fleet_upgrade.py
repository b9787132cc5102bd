"""Upgrade the fleet (or some sites) to an image in health-gated waves.

    manage.py fleet_upgrade --image subscribie/subscribie:v2 --all --wait
    manage.py fleet_upgrade --image subscribie/subscribie:v2 --all --start-at 2026-12-24T02:00Z
    manage.py fleet_upgrade --image subscribie/subscribie:v2 --all --bake 600 --respect-windows

Prints the rollout id. Exit status 0 only on success (with --wait/--sync: the rollout
succeeded; otherwise: it was started, scheduled, or is awaiting approval, or --dry-run printed
the plan). A rollout that needs approval (whole fleet, or more than ROLLOUT_APPROVAL_THRESHOLD
sites) or has --start-at is created but not started: an approver starts it (``rollout_control
ID approve``), or the every-minute schedule does at --start-at.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from rollouts import services
from rollouts.management.follow import finish, follow, resolve_actor
from rollouts.planner import PlanError
from rollouts.window_gate import WaveWindows
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


def parse_start_at(value: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset); a clear error otherwise."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--start-at {value!r} is not an ISO 8601 time, e.g. 2026-12-24T02:00:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise CommandError(f"--start-at {value!r} needs a time zone (Z or +01:00)")
    return when


def describe_windows(windows: WaveWindows) -> str:
    """One line: sites patchable now (in their window, or without one) and when the rest open."""
    parts = [f"{windows.open_now} in their window now", f"{windows.no_window} without a window"]
    parts += [f"{n} open {opens:%a %Y-%m-%d %H:%M} UTC" for opens, n in windows.opening]
    if windows.unreadable:
        parts.append(f"{windows.unreadable} with an unreadable window (held)")
    return "; ".join(parts)


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
        parser.add_argument(
            "--bake",
            type=int,
            default=services.DEFAULT_BAKE,
            help="seconds each healthy wave must stay healthy before the next wave starts",
        )
        parser.add_argument(
            "--respect-windows",
            action="store_true",
            help="patch each site only inside its maintenance window (others wait)",
        )
        parser.add_argument("--no-auto-revert", action="store_true")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        parser.add_argument("--wait", action="store_true", help="follow with a progress bar")
        parser.add_argument("--sync", action="store_true", help="run the engine in this process")
        parser.add_argument("--as", dest="username", help="record this user as the actor")
        parser.add_argument(
            "--start-at",
            type=parse_start_at,
            help="ISO 8601 time (with zone) at which the schedule starts it",
        )
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
                    bake=options["bake"],
                    respect_windows=options["respect_windows"],
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
                bake=options["bake"],
                respect_windows=options["respect_windows"],
                actor=actor,
                whole_fleet=options["all"],
                start_at=options["start_at"],
            )
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        if rollout.approval_required or rollout.start_at:
            self.stdout.write(f"rollout {rollout.pk}")
            self._not_started(rollout, following=options["sync"] or options["wait"])
            return
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

    def _not_started(self, rollout, *, following: bool) -> None:
        """Say why ``rollout`` was not started; with --wait/--sync that is a failure."""
        when = f"{rollout.start_at:%Y-%m-%d %H:%M:%S %Z}" if rollout.start_at else ""
        if rollout.approval_required:
            note = (
                f"rollout {rollout.pk} awaits approval by a second staff member "
                f"(manage.py rollout_control {rollout.pk} approve --as USER) until "
                f"{rollout.approval_expires_at:%Y-%m-%d %H:%M:%S %Z}; "
                + (f"it then starts at {when}" if when else "it starts when approved")
            )
        else:
            note = f"rollout {rollout.pk} is scheduled to start at {when}"
        self.stdout.write(note)
        if following:
            raise CommandError(f"{note}; not started, so not followed")

    def _print_plan(self, preview: services.RolloutPreview) -> None:
        self.stdout.write(
            f"dry run: {preview.total} sites to {preview.image} in {len(preview.waves)} waves; "
            f"failure budget {preview.budget} (allows {preview.allowed_failures}); "
            f"bake {preview.bake_seconds}s after each wave; maintenance windows "
            f"{'respected' if preview.respect_windows else 'ignored'}"
        )
        for number, slugs in enumerate(preview.waves, start=1):
            self.stdout.write(f"  wave {number}: {len(slugs)} sites: {', '.join(slugs)}")
            if preview.wave_windows:
                self.stdout.write(
                    f"    windows: {describe_windows(preview.wave_windows[number - 1])}"
                )
        for item in preview.left_out:
            self.stdout.write(f"  left out {item.slug}: {item.reason}")
