"""Parsing of the environment into settings values.

Pure functions, so each rule (what a bad ``DATABASE_URL`` says, how the django-q2 broker is
chosen) has one place and one test. ``settings.py`` only calls these.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql")


def database_from_url(url: str) -> dict[str, Any]:
    """Return a Django DATABASES entry for ``url`` or raise ImproperlyConfigured saying why.

    Only SQLite and PostgreSQL are supported: they are the two the suite runs on.
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in SUPPORTED_DATABASE_SCHEMES:
        shown = scheme or url[:40]
        raise ImproperlyConfigured(
            f"DATABASE_URL has an unsupported or missing scheme ({shown!r}); use "
            "sqlite:////absolute/path.sqlite3 or postgres://user@host:5432/dbname"
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # environ raises assorted errors for malformed URLs
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from exc
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database (add /dbname to the URL)")
    config.setdefault("CONN_MAX_AGE", 0)
    if scheme == "sqlite":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    return config


# SQLite shared by the web server, the qcluster's processes and cron (the demo, the tests):
# - IMMEDIATE transactions take the write lock when they begin, so two transactions that
#   both read and then write wait for each other (the busy timeout) instead of one failing
#   at once with "database is locked" (a deferred transaction cannot upgrade its read lock
#   while another holds the write lock; SQLite gives up without waiting). Found by the chaos
#   run (bench/chaos): the signup sync and the engine's workers writing at once.
# - WAL lets readers run beside the writer; the timeout outlasts a worker's longest write.
SQLITE_OPTIONS: dict[str, Any] = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def secret_key(value: str, *, debug: bool, testing: bool, dev_key_file: Path) -> str:
    """Return the SECRET_KEY to use.

    Without a configured key, a random development key is generated once and kept in
    ``dev_key_file`` (so the web server and the qcluster agree) -- but only when DEBUG is on or
    the test suite is running. Production refuses to start without one.
    """
    if value:
        return value
    if not (debug or testing):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment (or DEBUG=1 for development)."
        )
    if dev_key_file.exists():
        return dev_key_file.read_text().strip()
    dev_key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    dev_key_file.write_text(key)
    dev_key_file.chmod(0o600)
    return key


def q_cluster(
    *, broker: str, redis_url: str, timeout: int, retry: int, workers: int, sync: bool
) -> dict[str, Any]:
    """Build django-q2's Q_CLUSTER for the ``orm`` or ``redis`` broker.

    ``max_attempts`` is finite so a poisoned job cannot loop forever; ``retry`` must exceed
    ``timeout`` (checked at start-up by ``subscribie_admin.checks``).
    """
    cluster: dict[str, Any] = {
        "name": "subscribie-admin",
        "workers": workers,
        "timeout": timeout,
        "retry": retry,
        "max_attempts": 3,
        "ack_failures": True,
        "catch_up": False,
        "save_limit": 1000,
        "label": "Background jobs",
        "sync": sync,
    }
    if broker == "orm":
        cluster["orm"] = "default"
        cluster["poll"] = 0.2
    elif broker == "redis":
        if not redis_url:
            raise ImproperlyConfigured("Q_BROKER=redis needs REDIS_URL (redis://host:6379/0)")
        cluster["redis"] = redis_url
    else:
        raise ImproperlyConfigured(f"Q_BROKER must be 'orm' or 'redis', not {broker!r}")
    return cluster


def email_from_url(url: str) -> dict[str, Any]:
    """Django's EMAIL_* settings for ``EMAIL_URL`` (django-environ's email_url), or
    ImproperlyConfigured saying why. Unset parts are left to Django's defaults."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in environ.Env.EMAIL_SCHEMES:
        known = ", ".join(sorted(environ.Env.EMAIL_SCHEMES))
        raise ImproperlyConfigured(
            f"EMAIL_URL has an unsupported or missing scheme ({scheme or url[:40]!r}); use one "
            f"of {known}, e.g. smtp://user:password@host:587/?tls=True or consolemail://"
        )
    config = environ.Env.email_url_config(url)
    if config.pop("OPTIONS", None):
        raise ImproperlyConfigured(
            "EMAIL_URL takes no query options; for TLS use smtp+tls://user:password@host:587, "
            "for SSL smtp+ssl://user:password@host:465"
        )
    return {name: value for name, value in config.items() if value not in (None, "")}
