"""The admin index shows the fleet at a glance: counts, active rollouts, recent errors."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

import audit
from rollouts import services
from tests.fixtures.rollouts import site_row

pytestmark = pytest.mark.django_db


def test_dashboard_shows_fleet_rollouts_and_errors_in_constant_queries(
    admin_client, django_assert_max_num_queries
):
    sites = [site_row(f"dash-{i}") for i in range(4)]
    sites[0].observed_image = "hand/edited:v9"
    sites[0].save()
    rollout = services.rollout_create(sites=sites, image="subscribie/subscribie:v2", actor="t")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    audit.record(action="site.deploy_failed", actor="system:deploy", subject="dash-1",
                 ok=False, message="quota exceeded")  # fmt: skip

    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "Fleet: 4 sites" in page and "image drift: <strong>1</strong>" in page
    assert f"#{rollout.pk} upgrade subscribie/subscribie:v2" in page and "0 / 4" in page
    assert "quota exceeded" in page

    for i in range(4, 40):
        site_row(f"dash-{i}")
    with django_assert_max_num_queries(20):
        admin_client.get(reverse("admin:index"))


def test_dashboard_parts_follow_view_permissions(django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_site"))
    client = Client()
    client.force_login(clerk)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Fleet: 0 sites" in page
    assert "Active rollouts" not in page and "Recent errors" not in page
