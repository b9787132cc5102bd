"""Named leases in the database: compare-and-swap claims that expire on their own.

A holder that dies simply lets its lease lapse; nobody has to clean up after a SIGKILL.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from sites.models import JobLease


def lease_acquire(name: str, *, owner: str, seconds: float) -> bool:
    """Take (or renew) the lease ``name`` for ``seconds``; False if someone else holds it."""
    now = timezone.now()
    JobLease.objects.get_or_create(name=name)
    return bool(
        JobLease.objects.filter(name=name)
        .filter(Q(until__isnull=True) | Q(until__lt=now) | Q(owner=owner))
        .update(owner=owner, until=now + timedelta(seconds=seconds))
    )


def lease_release(name: str, *, owner: str) -> None:
    JobLease.objects.filter(name=name, owner=owner).update(owner="", until=None)
