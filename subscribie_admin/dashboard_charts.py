"""The dashboard's charts: the fleet's numbers (sites.selectors, rollouts.fleet_history) drawn
as SVG by subscribie_admin.charts. Two queries on top of the fleet overview."""

from __future__ import annotations

from typing import Any


def fleet_charts(overview: Any, *, with_history: bool) -> dict[str, Any]:
    from rollouts.fleet_history import image_history
    from sites.admin import SITE_COLOURS
    from subscribie_admin.charts import (
        Bar,
        Series,
        bar_chart,
        colour_for,
        stacked_area,
        stacked_bar,
    )

    current = dict(overview.images)
    history = image_history(current) if with_history else None
    order = list(history.images) if history else sorted(current)
    colours = {image: colour_for(i) for i, image in enumerate(order)}
    charts = {
        "by_status": stacked_bar(
            [Bar(label, count, SITE_COLOURS[value]) for value, label, count in overview.statuses],
            title="Sites by status",
        ),
        "by_image": bar_chart(
            [
                Bar(image, count, colours.get(image, colour_for(0)))
                for image, count in overview.images
            ],
            title="Sites per image",
        ),
    }
    if history is not None:
        charts["over_time"] = stacked_area(
            history.points,
            [Series(image, values, colours[image]) for image, values in history.images.items()],
            title="Images across the last rollouts",
        )
    return charts
