"""Pause, resume, cancel, approve or decline a rollout: ``manage.py rollout_control 12 pause``.

``approve`` and ``decline`` need ``--as USER``: a staff member with rollouts.approve_rollout
who (to approve) did not create the rollout.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rollouts import approvals, services
from rollouts.management.follow import resolve_actor
from rollouts.models import Rollout


class Command(BaseCommand):
    help = "Pause, resume, cancel (--revert puts changed sites back), approve or decline a rollout."

    def add_arguments(self, parser):
        parser.add_argument("rollout_id", type=int)
        parser.add_argument("action", choices=["pause", "resume", "cancel", "approve", "decline"])
        parser.add_argument("--revert", action="store_true", help="with cancel: revert sites")
        parser.add_argument("--as", dest="username", help="record this user as the actor")
        parser.add_argument("--reason", default="", help="with decline: why")

    def handle(
        self, *args, rollout_id: int, action: str, revert: bool, username, reason: str, **options
    ):
        try:
            rollout = Rollout.objects.get(pk=rollout_id)
        except Rollout.DoesNotExist:
            raise CommandError(f"no rollout {rollout_id}") from None
        actor = resolve_actor(username)
        try:
            if action == "pause":
                services.rollout_pause(rollout=rollout, actor=actor)
            elif action == "resume":
                services.rollout_resume(rollout=rollout, actor=actor)
            elif action == "approve":
                approvals.rollout_approve(rollout=rollout, actor=actor)
            elif action == "decline":
                approvals.rollout_decline(rollout=rollout, actor=actor, reason=reason)
            else:
                services.rollout_cancel(rollout=rollout, actor=actor, revert=revert)
        except services.RolloutError as exc:
            raise CommandError(str(exc)) from None
        rollout.refresh_from_db()
        self.stdout.write(f"rollout {rollout.pk}: {rollout.phase}")
