"""`manage.py approve_signups (--all | ID ...) [--as USERNAME]`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sites.models import Signup
from sites.services import signups_approve


class Command(BaseCommand):
    help = "Approve pending signups (by id, or --all) and queue their deploys."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int)
        parser.add_argument("--all", action="store_true", help="every pending signup")
        parser.add_argument("--as", dest="username", help="record this user as the approver")

    def handle(self, *args, ids, all: bool, username: str | None, **options):
        if bool(ids) == all:
            raise CommandError("give signup ids or --all (not both)")
        actor = "system:cli"
        if username:
            try:
                actor = get_user_model().objects.get(username=username)
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"no user {username!r}") from exc
            if not actor.has_perm("sites.approve_signup"):
                raise CommandError(f"{username} may not approve signups")
        pending = Signup.objects.filter(status=Signup.Status.PENDING)
        if ids:
            pending = pending.filter(pk__in=ids)
        sites = signups_approve(signups=list(pending.order_by("pk")), actor=actor)
        self.stdout.write(f"approved {len(sites)}: {', '.join(s.slug for s in sites) or '-'}")
