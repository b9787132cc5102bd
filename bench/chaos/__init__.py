"""``python -m bench chaos --seed N --sites 300 --rollouts 5``: a seeded chaos run.

A fleet on kubesim, a real qcluster with two workers, a sequence of upgrades, a broken image,
pauses and resumes, cancels with revert and rollbacks, while a fault schedule drawn from
``random.Random(seed)`` injects 429s with Retry-After, 500s after apply, 503 bursts, latency,
cut watches and LISTs, kubesim restarts with its state kept, CouchDB frozen mid-sync and
SIGKILLs of a worker or the whole qcluster. Then the invariants (bench/chaos/invariants.py)
are checked and printed with the faults by kind. Any failure prints the seed and the command
that replays it, and the exit status is 1.

``--seed`` may be repeated or given as a range (``--seed 1-20``); each seed runs on its own
throwaway SQLite database, and a summary table closes a multi-seed run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parse_seeds(values: list[str]) -> list[int]:
    seeds: list[int] = []
    for value in values:
        for part in value.split(","):
            if "-" in part.strip("-"):
                low, high = part.split("-", 1)
                seeds += range(int(low), int(high) + 1)
            elif part:
                seeds.append(int(part))
    return seeds


def setup_django(database: Path) -> str:
    """Django on a throwaway SQLite database (migrated); returns its URL for the qcluster."""
    sys.path.insert(0, str(ROOT))
    url = f"sqlite:///{database}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="subscribie_admin.settings",
        DEBUG="1",
        DATABASE_URL=url,
        Q_BROKER=os.environ.get("Q_BROKER", "orm"),
        LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def run_one(seed: int, args: argparse.Namespace) -> int:
    """One seed in a child process (each gets its own database and Django)."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "bench",
        "chaos",
        "--seed",
        str(seed),
        "--sites",
        str(args.sites),
        "--rollouts",
        str(args.rollouts),
        "--faults",
        str(args.faults),
        "--json-out",
        args.json_out,
    ]
    if args.verbose:
        command.append("--verbose")
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def _on_sigterm(*_: object) -> None:
    """Kill the qclusters this run started at once, then unwind (finally blocks stop the rest)."""
    from bench.chaos.processes import kill_all

    kill_all()
    sys.exit(143)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", action="append", default=None, help="N, N-M or N,M (repeatable)")
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument(
        "--faults", type=int, default=40, help="faults in the schedule (0: until the end)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every fault injected")
    parser.add_argument("--json-out", default="", help="append one JSON line per seed here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    seeds = parse_seeds(args.seed or ["1"])
    if len(seeds) > 1:
        return run_many(seeds, args)
    with tempfile.TemporaryDirectory(prefix=f"chaos-{seeds[0]}-") as tmp:
        url = setup_django(Path(tmp) / "chaos.sqlite3")
        from bench.chaos.plan import ChaosConfig
        from bench.chaos.report import render
        from bench.chaos.scenario import run_chaos

        config = ChaosConfig(
            seed=seeds[0], sites=args.sites, rollouts=args.rollouts, max_faults=args.faults or None
        )
        report = run_chaos(config, database_url=url, workdir=Path(tmp))
        print(render(report, verbose=args.verbose), flush=True)
        if args.json_out:
            _append_json(args.json_out, report)
        if not report.ok:
            log = Path(tmp) / "qcluster.log"
            print("  qcluster log tail:\n" + log.read_text()[-3000:] if log.exists() else "")
    return 0 if report.ok else 1


def _append_json(path: str, report) -> None:
    import json

    row = {
        "seed": report.config.seed,
        "faults": report.faults,
        "checks": [[c.name, c.held, c.detail] for c in report.checks],
        "seconds": report.seconds,
    }
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def run_many(seeds: list[int], args: argparse.Namespace) -> int:
    import json

    from bench.chaos.plan import FAULT_KINDS

    with tempfile.TemporaryDirectory(prefix="chaos-seeds-") as tmp:
        args.json_out = args.json_out or str(Path(tmp) / "runs.jsonl")
        codes = [run_one(seed, args) for seed in seeds]
        rows = [json.loads(line) for line in Path(args.json_out).read_text().splitlines()]
    print(f"\nchaos summary: {len(rows)} of {len(seeds)} seeds reported, {args.sites} sites")
    print("  faults injected (total over seeds):")
    for kind in FAULT_KINDS:
        print(f"    {kind:<26} {sum(r['faults'].get(kind, 0) for r in rows):>5}")
    print("  invariants (seeds held / run):")
    names = [c[0] for c in rows[0]["checks"]] if rows else []
    for i, name in enumerate(names):
        failed = [str(r["seed"]) for r in rows if not r["checks"][i][1]]
        held = len(rows) - len(failed)
        tail = f"  FAILED seeds: {', '.join(failed)}" if failed else ""
        print(f"    {name:<38} {held}/{len(rows)}{tail}")
    return max(codes) if codes else 0
