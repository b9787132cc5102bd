"""Django settings, read from the environment with django-environ only.

Every setting is documented in the README's settings table. Nothing here has side effects
beyond reading the environment (and creating a development SECRET_KEY file when allowed).
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import environ

from subscribie_admin import config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# pytest (8.2+) exports PYTEST_VERSION: the suite may run without a configured SECRET_KEY.
RUNNING_TESTS = "PYTEST_VERSION" in os.environ

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = config.secret_key(
    env.str("SECRET_KEY", default=""),
    debug=DEBUG,
    testing=RUNNING_TESTS,
    dev_key_file=BASE_DIR / "var" / "dev-secret-key",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "subscribie_admin.apps.FleetAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "subscribie_admin.apps.SubscribieAdminConfig",
    "audit",
    "sites",
    "rollouts",
    "notices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "subscribie_admin.frame_policy.FrameAncestorsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during authentication into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "subscribie_admin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "subscribie_admin.wsgi.application"

DATABASES = {
    "default": config.database_from_url(
        env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not Django's default in-memory test database, so tests can run a real qcluster
    # process against it; one per test process, so concurrent runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"subscribie-admin-test-{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Staff authentication ------------------------------------------------------------------
# django-axes first: it refuses a locked-out username+IP before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=60))
# Per username from one address: an attacker cannot lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Second factor (django-otp TOTP) for the admin: on unless DEBUG, so the demo needs none.
# Enrol a device with `manage.py enrol_totp USERNAME`.
ADMIN_REQUIRE_OTP = env.bool("ADMIN_REQUIRE_OTP", default=not DEBUG)
OTP_TOTP_ISSUER = "Subscribie fleet admin"
# Never show a device's secret in the admin (a view permission would reveal others' keys).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Sessions end after SESSION_COOKIE_AGE whatever the activity, and when the browser closes.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
# Error pages (DEBUG) and error reports hide credentials carried in URLs as well as Django's list.
DEFAULT_EXCEPTION_REPORTER_FILTER = "subscribie_admin.error_reports.CredentialFilter"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Production hardening; all on unless DEBUG. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER via the forwarded-proto header (see README).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Background jobs (django-q2) ---------------------------------------------------------
Q_BROKER = env.str("Q_BROKER", default="orm")
Q_CLUSTER = config.q_cluster(
    broker=Q_BROKER,
    redis_url=env.str("REDIS_URL", default=""),
    timeout=env.int("Q_TIMEOUT", default=180),
    retry=env.int("Q_RETRY", default=240),
    workers=env.int("Q_WORKERS", default=2),
    sync=env.bool("Q_SYNC", default=False),
)

# --- Kubernetes ---------------------------------------------------------------------------
# An explicit KUBECONFIG wins; otherwise in-cluster config when running in a Pod.
KUBECONFIG = env.str("KUBECONFIG", default="")
KUBE_CONTEXT = env.str("KUBE_CONTEXT", default="")
KUBE_IN_CLUSTER = not KUBECONFIG and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
KUBE_QPS = env.float("KUBE_QPS", default=50.0)
KUBE_BURST = env.int("KUBE_BURST", default=100)
KUBE_CONCURRENCY = env.int("KUBE_CONCURRENCY", default=16)
SITES_NAMESPACE = env.str("SITES_NAMESPACE", default="subscribie-sites")
SITES_BASE_DOMAIN = env.str("SITES_BASE_DOMAIN", default="subscribie.site")
SITE_IMAGE = env.str("SITE_IMAGE", default="subscribie/subscribie:latest")
SITE_PROGRESS_DEADLINE_SECONDS = env.int("SITE_PROGRESS_DEADLINE_SECONDS", default=600)
# How long a deploy job watches its site before leaving it to the scheduled status refresh.
SITE_DEPLOY_WATCH_SECONDS = env.int("SITE_DEPLOY_WATCH_SECONDS", default=60)
SITES_RESERVED_NAMES = env.list("SITES_RESERVED_NAMES", default=[])

# --- Fleet rollouts ---------------------------------------------------------------------------
# A tick claims at most this many targets; a job runs ticks for at most ROLLOUT_JOB_SECONDS
# and holds a lease of ROLLOUT_LEASE_SECONDS, so a killed worker's rollout is resumed by the
# every-minute schedule once the lease lapses. A rollout with no progress for its wave
# deadline plus the grace is halted by the reaper.
ROLLOUT_TICK_BATCH = env.int("ROLLOUT_TICK_BATCH", default=500)
ROLLOUT_JOB_SECONDS = env.int("ROLLOUT_JOB_SECONDS", default=30)
ROLLOUT_LEASE_SECONDS = env.int("ROLLOUT_LEASE_SECONDS", default=90)
ROLLOUT_STALE_GRACE_SECONDS = env.int("ROLLOUT_STALE_GRACE_SECONDS", default=300)
# A whole-fleet upgrade, or one of more than ROLLOUT_APPROVAL_THRESHOLD sites, needs a second
# staff member's approval (rollouts.approve_rollout); unapproved, it expires after
# ROLLOUT_APPROVAL_HOURS.
ROLLOUT_APPROVAL_THRESHOLD = env.int("ROLLOUT_APPROVAL_THRESHOLD", default=100)
# Off (0) for a team of one, where no second staff member exists to approve: no upgrade then
# waits for approval, whatever its size.
ROLLOUT_APPROVAL_REQUIRED = env.bool("ROLLOUT_APPROVAL_REQUIRED", default=True)
ROLLOUT_APPROVAL_HOURS = env.float("ROLLOUT_APPROVAL_HOURS", default=24.0)

# --- Email notices ----------------------------------------------------------------------------
# EMAIL_URL: smtp+tls://user:password@host:587, smtp+ssl://..., consolemail:// (prints
# them: the default and the demo's). Sends are retried NOTICE_MAX_ATTEMPTS times with
# exponential backoff from NOTICE_RETRY_SECONDS; staff notices also go to NOTICE_STAFF_EMAILS.
globals().update(config.email_from_url(env.str("EMAIL_URL", default="consolemail://")))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Subscribie <noreply@subscribie.site>")
NOTICE_STAFF_EMAILS = env.list("NOTICE_STAFF_EMAILS", default=[])
NOTICE_MAX_ATTEMPTS = env.int("NOTICE_MAX_ATTEMPTS", default=6)
NOTICE_RETRY_SECONDS = env.int("NOTICE_RETRY_SECONDS", default=60)
# Where the admin is reached, for links in staff emails (e.g. https://fleet.example.com).
ADMIN_BASE_URL = env.str("ADMIN_BASE_URL", default="")
# While a rollout only waits on purpose (a wave's bake, sites waiting for their maintenance
# window), its job ticks (and reads the baking wave) this often instead of every poll.
ROLLOUT_WAITING_POLL_SECONDS = env.float("ROLLOUT_WAITING_POLL_SECONDS", default=5.0)

# --- CouchDB --------------------------------------------------------------------------------
COUCHDB_URL = env.str("COUCHDB_URL", default="http://127.0.0.1:5984")
COUCHDB_SIGNUPS_DB = env.str("COUCHDB_SIGNUPS_DB", default="signups")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
