"""The dashboard's SVG charts: sites by status and per image, and the image distribution across
the last rollouts worked back from the rollout history."""

from __future__ import annotations

import pytest
from django.utils import timezone

from rollouts import services
from rollouts.fleet_history import image_history
from rollouts.models import Rollout, RolloutTarget
from subscribie_admin.charts import Bar, Series, bar_chart, stacked_area
from tests.fixtures.rollouts import site_row

V1, V2 = "subscribie/subscribie:v1", "subscribie/subscribie:v2"


def finish(rollout: Rollout, moved: list[str]) -> None:
    """Mark ``rollout`` succeeded, having moved the sites named in ``moved``."""
    RolloutTarget.objects.filter(rollout=rollout, site__slug__in=moved).update(
        status="succeeded", from_image=V1
    )
    Rollout.objects.filter(pk=rollout.pk).update(status="succeeded", finished_at=timezone.now())


@pytest.mark.django_db
def test_history_works_back_from_today_through_each_rollout():
    sites = [site_row(f"s{i}", image=V1) for i in range(4)]
    rollout = services.rollout_create(sites=sites, image=V2, waves="1,100%", actor="t")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    finish(rollout, ["s0", "s1", "s2"])  # s3 failed and was reverted: it did not move
    history = image_history({V1: 1, V2: 3})
    assert history.points == [f"before #{rollout.pk}", "now"]
    assert history.images == {V1: [4, 1], V2: [0, 3]}


@pytest.mark.django_db
def test_no_rollouts_yet_is_one_point_and_the_chart_says_so():
    history = image_history({V1: 2})
    assert history.points == ["now"] and history.images == {V1: [2]}
    svg = stacked_area(history.points, [Series(V1, [2], "#000")], title="t")
    assert "Not enough rollout history yet" in svg


@pytest.mark.django_db
def test_dashboard_shows_the_charts_to_staff_who_may_see_sites(admin_client):
    site_row("a", image=V1)
    site_row("b", image=V2)
    page = admin_client.get("/admin/").content.decode()
    charts = page[page.index('id="fleet-charts"') :]
    assert charts.count('class="chart"') == 3
    assert f"{V1}: 1</title>" in charts and "live: 2</title>" in charts


def test_labels_are_escaped():
    svg = bar_chart([Bar("<script>x</script>", 3)], title="<b>")
    assert "<script>" not in svg and "&lt;script&gt;x&lt;/script&gt;" in svg
    assert "<title>&lt;b&gt;</title>" in svg
