#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import gc
import os
import sys

# Django's start-up and a rollout's ORM rows and decoded Deployments are many small objects
# with no reference cycles (refcounting frees them), so the cyclic collector's default gen-0
# threshold of 700 allocations only re-walks them: 0.13 ms of CPU per site in a 1,000-site
# fleet_upgrade. Gen 2 still runs, so cyclic garbage is still freed in long-lived processes.
GC_THRESHOLDS = (50_000, 20, 10)


def main():
    """Run administrative tasks."""
    gc.set_threshold(*GC_THRESHOLDS)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "subscribie_admin.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
