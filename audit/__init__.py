"""Audit history. Write with ``audit.record(...)``; never update or delete."""

from audit.recorder import actor_label_for, record

__all__ = ["actor_label_for", "record"]
