"""``python -m bench``: chatkeep against its peers on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

from bench.compare import machine, on_postgres, on_redis, on_sqlite, report, scale, separate
from bench.compare.contender import Backend
from bench.compare.runner import Run, describe, repeat
from bench.compare.summary import summarise
from bench.compare.workload import Workload

BACKENDS = {b.name: b for b in (on_sqlite.BACKEND, on_postgres.BACKEND, on_redis.BACKEND)}
RESULTS = Path(__file__).resolve().parent.parent / "results"
QUICK = Workload(sessions=20, messages=10, read_rounds=3, task_messages=5)
WORKLOAD_OPTIONS = (
    ("sessions", "sessions written in turn"),
    ("messages", "messages per session"),
    ("size", "characters per message"),
    ("read-rounds", "reads of every session"),
    ("tasks", "concurrent tasks"),
    ("task-messages", "messages per concurrent task"),
    ("repeat", "repetitions (the median is reported)"),
)
REPORTED = (
    "python",
    "chatkeep",
    "asyncpg",
    "redis",
    "openai-agents",
    "langchain-community",
    "langchain-postgres",
    "langchain-core",
    "sqlalchemy",
    "aiosqlite",
    "psycopg",
)
"""Distributions whose versions the results record."""
SCALE = (10_000, 100_000)
SCALE_FULL = (10_000, 100_000, 1_000_000)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="chatkeep against its peers on SQLite, PostgreSQL and Redis.",
    )
    parser.add_argument("--quick", action="store_true", help="a small workload: under 2 minutes")
    parser.add_argument(
        "--backend", action="append", choices=sorted(BACKENDS), help="only these (repeatable)"
    )
    defaults = Workload()
    for name, help_text in WORKLOAD_OPTIONS:
        attr = name.replace("-", "_")
        parser.add_argument(
            f"--{name}", type=int, help=f"{help_text} (default {getattr(defaults, attr)})"
        )
    parser.add_argument(
        "--million", action="store_true", help="also list and read at 1M sessions (minutes)"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the 10k/100k sessions part")
    parser.add_argument(
        "--no-separate", action="store_true", help="skip bench_sync.py and bench_server.py"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    return parser.parse_args(argv)


def workload_of(args: argparse.Namespace) -> Workload:
    base = QUICK if args.quick else Workload()
    names = [name.replace("-", "_") for name, _ in WORKLOAD_OPTIONS]
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as exc:
        raise SystemExit(f"python -m bench: {exc}") from None


async def run_backend(backend: Backend, workload: Workload) -> dict[str, Any]:
    packages = [e.package for e in backend.entries]
    try:
        version = await backend.version()
    except Exception as exc:
        reason = f"{backend.title} unreachable: {describe(exc)}"
        print(f"  {reason}", flush=True)
        reps = [{e.name: Run(skipped=reason) for e in backend.entries}]
        return {
            "name": backend.name,
            "title": backend.title,
            "version": "unreachable",
            "contenders": summarise(backend, reps, {}),
        }
    reps = await repeat(backend, workload)
    return {
        "name": backend.name,
        "title": backend.title,
        "version": version,
        "contenders": summarise(backend, reps, machine.versions(packages)),
    }


async def run_scale(sizes: tuple[int, ...], chosen: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, title in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if name not in chosen:
            continue
        try:
            found[title] = await scale.grow(title, sizes)
        except Exception as exc:
            print(f"  {title}: scale not measured: {describe(exc)}", flush=True)
            found[title] = []
    return found


async def measure(args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    chosen = args.backend or list(BACKENDS)
    spent: dict[str, float] = {}
    backends = []
    for name in chosen:
        started = time.perf_counter()
        backends.append(await run_backend(BACKENDS[name], workload))
        spent[name] = lap(name, started)
    sizes = SCALE_FULL if args.million else SCALE
    started = time.perf_counter()
    scaled = {} if args.no_scale else await run_scale(sizes, chosen)
    spent["scale"] = lap("scale", started)
    return {"backends": backends, "scale": scaled, "seconds": spent}


def lap(name: str, started: float) -> float:
    seconds = round(time.perf_counter() - started, 1)
    print(f"  {name}: {seconds} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    workload = workload_of(args)
    started = dt.datetime.now(dt.UTC)
    print(f"workload: {workload}", flush=True)
    results: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": bool(args.quick),
        "workload": workload.as_json(),
    }
    results |= asyncio.run(measure(args, workload))
    started_separate = time.perf_counter()
    results["separate"] = {} if args.no_separate else separate.run_all(bool(args.quick))
    results["seconds"]["separate"] = lap("separate", started_separate)
    servers = [b["version"] for b in results["backends"] if b["version"] != "unreachable"]
    results["machine"] = machine.describe(servers)
    results["machine"]["packages"] = machine.versions(REPORTED)
    results["seconds"]["total"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    stem = started.strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    paths = report.write_all(results, args.out, stem)
    print(report.markdown(results))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
