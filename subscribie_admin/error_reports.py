"""What error pages (DEBUG) and error reports may show: no credentials.

Django's filter hides settings and request META whose names contain API, AUTH, TOKEN, KEY,
SECRET, PASS or SIGNATURE. Our credentials also travel inside URLs (``COUCHDB_URL`` carries the
CouchDB password, ``REDIS_URL``/``Q_CLUSTER['redis']`` and ``DATABASE_URL`` may) and the
kubeconfig path leads to the Kubernetes token, so those names are hidden too. Under
``runserver`` the process environment is part of request META, which is why the environment
names matter as well.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

HIDDEN_NAMES = re.compile(
    "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE"  # Django's own list
    "|COUCHDB_URL|DATABASE_URL|REDIS|KUBECONFIG",
    flags=re.IGNORECASE,
)


class CredentialFilter(SafeExceptionReporterFilter):
    hidden_settings = HIDDEN_NAMES
