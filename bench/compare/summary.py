"""From the repetitions' raw timings to one row per contender: rates, latencies, ratios.

Rates are calls per second of time spent in calls; the concurrent rate is messages per
second of wall time. Each ratio is the contender's rate over the raw driver's rate in
the same repetition; every number reported is the median over the repetitions.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench.compare.contender import Backend, Entry
from bench.compare.runner import Run

Row = dict[str, object]
PHASES = ("append", "read", "concurrent")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rate(run: Run, phase: str) -> float | None:
    if phase == "concurrent":
        return len(run.concurrent) / run.concurrent_wall if run.concurrent_wall else None
    calls: list[float] = getattr(run, phase)
    return len(calls) / sum(calls) if calls and sum(calls) else None


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def status(runs: Sequence[Run]) -> tuple[str, str]:
    """``ok``, ``skipped``, ``failed`` or ``lost or reordered messages``, and why."""
    for run in runs:
        if run.skipped:
            return "skipped", run.skipped
    errors = [run.error for run in runs if run.error]
    if errors:
        return "failed", errors[0]
    if any(run.problem_count for run in runs):
        count = sum(run.problem_count for run in runs)
        first = next(p for run in runs for p in run.problems)
        return "lost or reordered messages", f"{count} problems, e.g. {first}"
    return "ok", ""


def phase_numbers(runs: Sequence[Run], raw: Sequence[Run] | None, phase: str) -> Row:
    rates = [rate(run, phase) for run in runs]
    ratios: list[float | None] = []
    if raw is not None:
        for own, base in zip(rates, (rate(r, phase) for r in raw), strict=True):
            ratios.append(own / base if own is not None and base else None)
    calls = [getattr(run, phase) for run in runs]
    return {
        "rate": median(rates),
        "ratio": median(ratios),
        "p50_us": median([percentile(c, 0.5) * 1e6 if c else None for c in calls]),
        "p99_us": median([percentile(c, 0.99) * 1e6 if c else None for c in calls]),
        "calls": median([float(len(c)) for c in calls]),
    }


def summarise(
    backend: Backend, repetitions: Sequence[dict[str, Run]], versions: dict[str, str]
) -> list[Row]:
    raw_entry = next((e for e in backend.entries if e.kind == "raw"), None)
    raw_runs = [rep[raw_entry.name] for rep in repetitions] if raw_entry else None
    if raw_runs is not None and status(raw_runs)[0] != "ok":
        raw_runs = None  # no baseline: no ratios
    rows = []
    for entry in backend.entries:
        runs = [rep[entry.name] for rep in repetitions]
        rows.append(row(entry, runs, raw_runs, versions.get(entry.package, "")))
    return rows


def row(entry: Entry, runs: Sequence[Run], raw: Sequence[Run] | None, version: str) -> Row:
    state, reason = status(runs)
    found: Row = {
        "name": entry.name,
        "kind": entry.kind,
        "package": entry.package,
        "version": version,
        "note": entry.note,
        "status": state,
        "reason": reason,
        "problems": [p for run in runs for p in run.problems][:10],
    }
    if state != "skipped":
        for phase in PHASES:
            found[phase] = phase_numbers(runs, raw, phase)
    return found
