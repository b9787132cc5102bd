"""Benchmarks: ``python -m bench NAME [args]`` runs ``bench.NAME.main(argv)``."""

from __future__ import annotations

from collections.abc import MutableMapping


def production_settings(env: MutableMapping[str, str], bench: str) -> None:
    """Put ``env`` (``os.environ`` or a child's environment) on production settings, as staff
    and cron run the tool: with DEBUG on, Django also logs every query and, on SQLite, quotes
    each one's parameters with a query of its own. A throwaway SECRET_KEY unless one is set."""
    env["DEBUG"] = "0"
    env.setdefault("SECRET_KEY", f"bench-{bench}-only-" + "x" * 40)
