"""Dispatch ``python -m bench NAME [args]`` to ``bench.NAME.main(argv)``.

NAME is any module or package in bench/ not starting with ``_``: ``kubesim``, ``signups``,
``rollouts`` (ratios against a baseline from the same run) and ``chaos`` (a seeded chaos run
with invariants, ``bench/chaos/``; ``--seed N --sites 300 --rollouts 5``).
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    available = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench NAME [args]   (NAME: all, {', '.join(available)})")
        return 0 if argv else 2
    name = argv[0]
    if name == "all":
        # Each benchmark in its own process: each sets Django up on its own throwaway database.
        return max(
            subprocess.run([sys.executable, "-m", "bench", each], check=False).returncode
            for each in available
        )
    if name not in available:
        print(f"unknown benchmark {name!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
