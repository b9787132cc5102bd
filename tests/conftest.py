"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per external part)."""

import pytest

pytest_plugins = ["tests.fixtures.kubesim", "tests.fixtures.couchdb", "tests.fixtures.sites"]


@pytest.fixture(autouse=True)
def _plain_http_test_client(request):
    """The suite runs with DEBUG off (production defaults); the test client speaks plain HTTP.

    Pure-module tests also run without the django plugin (``-p no:django``).
    """
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("settings").SECURE_SSL_REDIRECT = False
