"""Signup documents for `make demo`: mostly valid, a few hostile ones to show rejection."""

from __future__ import annotations

from typing import Any

from sites.couchdb import CouchDB

BUSINESSES = [
    "Bob's Bakery",
    "Café Crème",
    "Green Grocer",
    "Hill Farm Eggs",
    "Jesmond Flowers",
    "Kettle & Co",
    "Lantern Books",
    "Moor Honey",
    "North Shore Surf",
    "Oak Joinery",
    "Pebble Pottery",
    "Quay Coffee",
    "River Yoga",
    "Saltmarsh Soap",
    "Tyne Tea",
    "Upland Wool",
    "Valley Veg Box",
    "Willow Baskets",
    "Yard Brewing",
    "Zest Juices",
    "Allotment Club",
    "Brick Lane Bagels",
    "Coast Kayaks",
    "Dale Dairy",
    "Elm Music",
]

# Every third valid signup asks for a maintenance window (in its own time zone).
WINDOWS = [
    "Sun 02:00-05:00 Europe/London",
    "Sat,Sun 23:00-01:00 Australia/Sydney",
    "Mon-Fri 01:00-03:00 America/New_York",
]

INVALID = [
    {"company": {"name": "www"}, "users": ["owner@example.com"]},  # reserved name
    {"company": {"name": "Evil\ntitle: {{ image }}"}, "users": ["x@example.com"]},
    {"company": {"name": "No Owner Ltd"}, "users": []},
    {"company": "not an object", "users": ["a@example.com"], "site_name": 42},
    {"company": {"name": "Bob's Bakery"}, "users": ["dup@example.com"]},  # duplicate name
]


def demo_documents(count: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    valid = max(count - len(INVALID), 0)
    for i in range(valid):
        name = BUSINESSES[i % len(BUSINESSES)] + ("" if i < len(BUSINESSES) else f" {i}")
        doc: dict[str, Any] = {
            "_id": f"signup-{i:04d}",
            "queue_state": "deploy",
            "company": {"name": name},
            "users": [f"owner{i}@example.com"],
            "theme": {"name": "jesmond", "colour": "#aa3355"},
            "plans": [{"title": "Monthly box", "price": 1500, "interval": "month"}],
        }
        if i % 3 == 1:
            doc["maintenance_window"] = WINDOWS[(i // 3) % len(WINDOWS)]
        docs.append(doc)
    for j, doc in enumerate(INVALID[: count - valid]):
        docs.append({"_id": f"signup-invalid-{j}", "queue_state": "deploy", **doc})
    return docs


def seed_signups(*, couchdb_url: str, database: str = "signups", count: int = 30) -> int:
    """Create the database if needed and write the demo documents; returns how many."""
    with CouchDB(couchdb_url, database) as client:
        client.ensure_database()
        results = client.bulk_docs(demo_documents(count))
    return sum(1 for r in results if "error" not in r)
