"""approve_signups and deploy_sites from the command line, on kubesim (cron and scripts)."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from sites.models import Signup, Site
from sites.sync import signups_sync
from tests.fixtures.couchdb import signup_doc

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending(signups_feed, cluster_settings):
    signups_feed.bulk_docs([signup_doc(f"cmd-{i}", f"Command Shop {i}") for i in range(3)])
    signups_sync(client=signups_feed)
    return list(Signup.objects.order_by("pk"))


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_approve_by_id_as_a_user_then_all(pending, django_user_model):
    with pytest.raises(CommandError, match="ids or --all"):
        run("approve_signups")
    django_user_model.objects.create_user("clerk", password="pw-clerk-123")
    with pytest.raises(CommandError, match="may not approve"):
        run("approve_signups", str(pending[0].pk), "--as", "clerk")
    boss = django_user_model.objects.create_superuser("boss", "b@example.com", "pw-boss-123")
    assert "approved 1: command-shop-0" in run(
        "approve_signups", str(pending[0].pk), "--as", "boss"
    )
    assert AuditEvent.objects.get(action="signup.approve").actor == boss
    assert "approved 2" in run("approve_signups", "--all")
    assert Site.objects.count() == 3


def test_deploy_sites_sync_wait_brings_sites_live(pending, kubesim):
    run("approve_signups", "--all")
    output = run("deploy_sites", "--sync", "--wait", "--timeout", "60")
    assert "3 site(s) live" in output
    assert set(Site.objects.values_list("status", flat=True)) == {Site.Status.LIVE}


def test_deploy_sites_wait_fails_when_a_site_does_not_go_live(pending, kubesim, settings):
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 1
    kubesim.set_fail_images(r":broken$")
    settings.SITE_IMAGE = "subscribie/subscribie:broken"
    run("approve_signups", "--all")
    with pytest.raises(CommandError, match="3 of 3 site"):
        run("deploy_sites", "--sync", "--wait", "--timeout", "30")
    assert set(Site.objects.values_list("status", flat=True)) == {Site.Status.FAILED}
