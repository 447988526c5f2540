"""The write-behind and server benchmarks, which live in their own scripts.

``bench/bench_sync.py`` (write-behind drain rate and lag) and ``bench/bench_server.py``
(REST append and WebSocket fan-out against a bare endpoint) are run by ``python -m
bench`` through their ``main`` functions; what they print is kept in the results. When
one is missing or fails, the results say so and that it is to be run separately.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from types import ModuleType


def run_sync(module: ModuleType, quick: bool) -> None:
    """``bench_sync.main(args)``: SQLite as the durable store, 8 writers, sync every 1 s."""
    seconds = 3.0 if quick else 10.0
    args = argparse.Namespace(durable="sqlite", seconds=seconds, writers=8, interval=1.0)
    asyncio.run(module.main(args))


def run_server(module: ModuleType, quick: bool) -> None:
    """``bench_server.main()``, reading its options from the command line."""
    argv = sys.argv
    sys.argv = [module.__name__] + (["--quick"] if quick else [])
    try:
        module.main()
    finally:
        sys.argv = argv


SCRIPTS: dict[str, tuple[str, Callable[[ModuleType, bool], None]]] = {
    "Write-behind (bench/bench_sync.py)": ("bench.bench_sync", run_sync),
    "Server (bench/bench_server.py)": ("bench.bench_server", run_server),
}


def run_script(module_name: str, call: Callable[[ModuleType, bool], None], quick: bool) -> str:
    """The printed report of one script, or why there is none."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"Not run: `{module_name}` cannot be imported ({exc}); run it separately."
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            call(module, quick)
    except SystemExit as exc:
        if exc.code not in (0, None):
            output = out.getvalue().rstrip()
            return f"Failed (exit {exc.code}); run it separately. Its output:\n\n```\n{output}\n```"
    except Exception as exc:
        return f"Failed: {type(exc).__name__}: {exc}; run it separately."
    return f"```\n{out.getvalue().rstrip()}\n```"


def run_all(quick: bool) -> dict[str, str]:
    found = {}
    for title, (name, call) in SCRIPTS.items():
        print(f"  {title}", flush=True)
        found[title] = run_script(name, call, quick)
    return found
