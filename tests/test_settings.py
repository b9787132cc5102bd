"""Settings parsing and start-up checks: bad configuration fails early with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from subscribie_admin import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/db", "unsupported or missing scheme ('mysql')"),
        ("not a url", "unsupported or missing scheme"),
        ("", "unsupported or missing scheme"),
        ("postgres://postgres@127.0.0.1:5432", "names no database"),
    ],
)
def test_bad_database_url_gives_a_clear_error(url, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.database_from_url(url)


def test_database_urls_for_sqlite_and_postgres():
    sqlite = config.database_from_url("sqlite:////tmp/x.sqlite3")
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert sqlite["NAME"] == "/tmp/x.sqlite3"
    # Shared by the web server, the workers and cron: writers queue instead of failing.
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert sqlite["OPTIONS"]["timeout"] >= 20
    pg = config.database_from_url("postgres://postgres@127.0.0.1:5432/test")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["NAME"], pg["HOST"], pg["PORT"]) == ("test", "127.0.0.1", 5432)


def test_secret_key_is_required_outside_debug(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        config.secret_key("", debug=False, testing=False, dev_key_file=tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_dev_secret_key_is_generated_once_and_reused(tmp_path):
    first = config.secret_key("", debug=True, testing=False, dev_key_file=tmp_path / "k")
    second = config.secret_key("", debug=True, testing=False, dev_key_file=tmp_path / "k")
    assert first == second and len(first) >= 50
    assert config.secret_key("given", debug=False, testing=False, dev_key_file=tmp_path / "k") == (
        "given"
    )


def test_q_cluster_brokers():
    orm = config.q_cluster(broker="orm", redis_url="", timeout=60, retry=90, workers=2, sync=False)
    assert orm["orm"] == "default" and "redis" not in orm
    assert orm["max_attempts"] > 0
    redis = config.q_cluster(
        broker="redis",
        redis_url="redis://127.0.0.1:6379/0",
        timeout=60,
        retry=90,
        workers=2,
        sync=False,
    )
    assert redis["redis"] == "redis://127.0.0.1:6379/0" and "orm" not in redis
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        config.q_cluster(broker="redis", redis_url="", timeout=1, retry=2, workers=1, sync=False)
    with pytest.raises(ImproperlyConfigured, match="Q_BROKER must be"):
        config.q_cluster(broker="sqs", redis_url="", timeout=1, retry=2, workers=1, sync=False)


def _errors(ids_prefix="subscribie_admin."):
    return [m for m in run_checks() if m.id and m.id.startswith(ids_prefix)]


def test_startup_check_refuses_retry_not_longer_than_timeout(settings):
    with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "timeout": 300, "retry": 300}):
        errors = _errors()
    assert [e.id for e in errors] == ["subscribie_admin.E002"]
    assert "Q_RETRY" in errors[0].hint
    with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "timeout": None}):
        assert [e.id for e in _errors()] == ["subscribie_admin.E001"]
    with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "max_attempts": 0}):
        assert [e.id for e in _errors()] == ["subscribie_admin.E003"]
    with override_settings(ROLLOUT_JOB_SECONDS=500):
        assert [e.id for e in _errors()] == ["subscribie_admin.E004", "subscribie_admin.E005"]
    with override_settings(SITE_DEPLOY_WATCH_SECONDS=180):
        assert [e.id for e in _errors()] == ["subscribie_admin.E004"]
    assert _errors() == []


def _manage(*args, **env):
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "PYTEST_VERSION")
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_manage_refuses_to_start_without_secret_key_in_production():
    result = _manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_manage_reports_bad_database_url_clearly():
    result = _manage("check", DEBUG="1", DATABASE_URL="mysql://nope/db")
    assert result.returncode != 0
    assert "DATABASE_URL has an unsupported or missing scheme" in result.stderr


def test_startup_check_runs_with_manage_and_names_the_setting():
    result = _manage("check", DEBUG="1", Q_TIMEOUT="500", Q_RETRY="400")
    assert result.returncode != 0
    assert "subscribie_admin.E002" in result.stderr and "Q_RETRY" in result.stderr


def test_check_deploy_is_clean_with_production_like_env():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="x" * 20 + "production-like-secret-key-with-enough-entropy-1234567890",
        ALLOWED_HOSTS="fleet.example.com",
        EMAIL_URL="smtp+tls://fleet:pw@mail.example.com:587",  # without it: W001
    )
    assert result.returncode == 0, result.stderr
