"""`manage.py reject_signups ID ... --reason TEXT [--as USERNAME] [--sync]`.

The admin's "Reject selected signups…" for scripts: the same service (``signup_reject``), so
each rejection is audited and the document is written back to CouchDB as
``queue_state: rejected`` by the queued write-back job (or, with ``--sync``, in this process).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sites.models import Signup
from sites.services import signup_reject

REJECTABLE = (Signup.Status.PENDING, Signup.Status.REJECTED)
REASON_MAX = 500  # as the admin's reason form


class Command(BaseCommand):
    help = "Reject signups for good (by id) with a reason; audited and written back to CouchDB."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="+", type=int, help="signup ids (as in the admin)")
        parser.add_argument("--reason", required=True, help="recorded and written back")
        parser.add_argument("--as", dest="username", help="record this user as the rejecter")
        parser.add_argument(
            "--sync", action="store_true", help="write back to CouchDB now, not via the queue"
        )

    def handle(self, *args, ids: list[int], reason: str, username: str | None, sync: bool, **o):
        reason = reason.strip()
        if not reason:
            raise CommandError("--reason must not be empty")
        if len(reason) > REASON_MAX:
            raise CommandError(f"--reason is {len(reason)} characters; at most {REASON_MAX}")
        actor = self._actor(username)
        signups = {s.pk: s for s in Signup.objects.filter(pk__in=ids)}
        missing = [pk for pk in ids if pk not in signups]
        if missing:
            # Nothing is rejected when any id is wrong: a typo must not half-run a script.
            raise CommandError(f"no signup with id {', '.join(map(str, missing))}")
        rejected: list[str] = []
        skipped: list[str] = []
        for pk in dict.fromkeys(ids):
            signup = signups[pk]
            if signup.status not in REJECTABLE:
                skipped.append(f"{pk} ({signup.get_status_display()})")
            elif signup_reject(signup=signup, actor=actor, reason=reason):
                rejected.append(f"{pk} {signup}")
            else:
                skipped.append(f"{pk} (changed meanwhile)")
        self.stdout.write(f"rejected {len(rejected)}: {', '.join(rejected) or '-'}")
        if skipped:
            self.stderr.write(f"skipped {len(skipped)}: {', '.join(skipped)}")
        if sync and rejected:
            self._write_back()

    def _actor(self, username: str | None):
        if not username:
            return "system:cli"
        users = get_user_model()
        try:
            user = users.objects.get(username=username)
        except users.DoesNotExist as exc:
            raise CommandError(f"no user {username!r}") from exc
        if not user.has_perm("sites.reject_signup"):
            raise CommandError(f"{username} may not reject signups")
        return user

    def _write_back(self) -> None:
        from sites.sync import couchdb_from_settings, signups_write_back

        errors: list[str] = []
        with couchdb_from_settings() as client:
            written = signups_write_back(client=client, errors=errors)
        self.stdout.write(f"written back {written}")
        if errors:
            raise CommandError("; ".join(errors))
