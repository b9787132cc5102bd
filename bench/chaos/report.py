"""Printing a chaos run: the rollouts, the faults injected by kind, the invariants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bench.chaos.plan import FAULT_KINDS
from bench.chaos.scenario import ChaosReport, replay_command


def render(report: ChaosReport, *, verbose: bool = False) -> str:
    c = report.config
    lines = [f"chaos seed {c.seed}: {c.sites} sites, {c.rollouts} rollouts, {report.seconds}s"]
    for r in report.steps:
        extra = []
        if r.step.pause_at is not None:
            extra.append(f"pause at {r.step.pause_at:.0%} for {r.step.pause_for}s")
        if r.step.cancel_at is not None:
            extra.append(f"cancel at {r.step.cancel_at:.0%}")
        rid = f"#{r.rollout_id}" if r.rollout_id else "-"
        lines.append(
            f"  {rid:>4} {r.step.kind:<13} waves {r.step.waves:<16} -> {r.status:<18} "
            f"{r.seconds:6.1f}s  {', '.join(extra)}"
        )
        if r.message:
            lines.append(f"         {r.message[:150]}")
    lines.append("  faults injected:")
    lines += [f"    {kind:<26} {report.faults.get(kind, 0):>4}" for kind in FAULT_KINDS]
    lines.append("  invariants:")
    lines += [
        f"    {'held  ' if check.held else 'FAILED'} {check.name:<38} {check.detail}"
        for check in report.checks
    ]
    lines += [f"  note: {note}" for note in report.notes]
    if verbose:
        lines += [f"    {f.at:7.2f}s {f.kind}: {f.detail}" for f in report.fault_log]
    if not report.ok:
        lines.append(f"  FAILED seed {c.seed}; replay with: {replay_command(c)}")
    return "\n".join(lines)


def summary(reports: Iterable[ChaosReport]) -> str:
    """One table over many seeds: faults by kind (total), invariants held per seed."""
    reports = list(reports)
    faults: Counter[str] = Counter()
    for r in reports:
        faults.update(r.faults)
    names = [check.name for check in reports[0].checks] if reports else []
    seeds = " ".join(str(r.config.seed) for r in reports)
    lines = [f"chaos summary over {len(reports)} seeds ({seeds})", "  faults injected (total):"]
    lines += [f"    {kind:<26} {faults.get(kind, 0):>5}" for kind in FAULT_KINDS]
    lines.append("  invariants (seeds held / run):")
    for i, name in enumerate(names):
        held = sum(r.checks[i].held for r in reports)
        failed = [str(r.config.seed) for r in reports if not r.checks[i].held]
        lines.append(
            f"    {name:<38} {held}/{len(reports)}"
            + (f"  failed seeds: {', '.join(failed)}" if failed else "")
        )
    return "\n".join(lines)
