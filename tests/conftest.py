"""Shared pytest configuration: fixtures live in tests/fixtures/ (one module per external part)."""

import pytest

pytest_plugins = [
    "tests.fixtures.kubesim",
    "tests.fixtures.couchdb",
    "tests.fixtures.sites",
    "tests.fixtures.any_cluster",
    "tests.fixtures.smtp",
    "tests.fixtures.clock",
    "tests.fixtures.admin_surface",
]


@pytest.fixture(autouse=True)
def _plain_http_test_client(request):
    """The suite runs with DEBUG off (production defaults); the test client speaks plain HTTP,
    and logs staff in with ``force_login`` (no second factor): the admin's TOTP requirement is
    off here and turned on by the tests of it (tests/test_admin_login.py).

    Pure-module tests also run without the django plugin (``-p no:django``).
    """
    if request.config.pluginmanager.hasplugin("django"):
        settings = request.getfixturevalue("settings")
        settings.SECURE_SSL_REDIRECT = False
        settings.ADMIN_REQUIRE_OTP = False


# The parametrizations that run on a real control plane (``make test-real``), by fixture.
REAL_CLUSTER_VARIANTS = {"target": "contract", "kube_target": "real"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-cluster-only",
        action="store_true",
        help="run only the variants that target the real cluster in KUBESIM_CONTRACT_KUBECONFIG",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--real-cluster-only"):
        return

    def on_real_cluster(item: pytest.Item) -> bool:
        params = getattr(getattr(item, "callspec", None), "params", {})
        return any(params.get(name) == value for name, value in REAL_CLUSTER_VARIANTS.items())

    keep = [item for item in items if on_real_cluster(item)]
    config.hook.pytest_deselected(items=[item for item in items if not on_real_cluster(item)])
    items[:] = keep
