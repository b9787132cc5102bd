"""`manage.py enrol_totp USERNAME`: give a staff user a TOTP device for the admin's second factor.

Prints the ``otpauth://`` URL and the base32 secret once, for an authenticator app; the admin
never shows them again (``OTP_ADMIN_HIDE_SENSITIVE_DATA``). The device is confirmed at once:
whoever runs this command on the server is trusted to hand the secret over. ``--replace``
removes the user's existing TOTP devices first (a lost phone). Audited as ``auth.totp_enrol``.
"""

from __future__ import annotations

from base64 import b32encode

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

import audit


class Command(BaseCommand):
    help = "Enrol a TOTP device (authenticator app) for a staff user; prints the secret once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="device name shown in admin")
        parser.add_argument(
            "--replace", action="store_true", help="delete the user's other TOTP devices first"
        )

    def handle(self, *args, username: str, name: str, replace: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: the admin would refuse them anyway")
        with transaction.atomic():
            removed = 0
            if replace:
                removed, _ = TOTPDevice.objects.filter(user=user).delete()
            device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
            audit.record(
                action="auth.totp_enrol",
                actor="system:cli",
                subject=username,
                data={"device": device.pk, "name": name, "replaced": removed},
                message=f"TOTP device {name!r} enrolled, {removed} other device(s) removed",
            )
        secret = b32encode(device.bin_key).decode().rstrip("=")
        self.stdout.write(
            f"TOTP device {name!r} enrolled for {username}. Add it to an authenticator app "
            "(this is shown once):\n"
            f"  secret: {secret}\n"
            f"  url:    {device.config_url}\n"
        )
