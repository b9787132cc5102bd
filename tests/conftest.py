"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per external part)."""

import pytest

pytest_plugins = ["tests.fixtures.kubesim", "tests.fixtures.couchdb"]


@pytest.fixture(autouse=True)
def _plain_http_test_client(settings):
    """The suite runs with DEBUG off (production defaults); the test client speaks plain HTTP."""
    settings.SECURE_SSL_REDIRECT = False
