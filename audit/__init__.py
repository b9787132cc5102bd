"""Audit history. Write with ``audit.record(...)``; never update or delete."""

from audit.recorder import actor_label_for, record, record_many

__all__ = ["actor_label_for", "record", "record_many"]
