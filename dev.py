#!/usr/bin/env python3
"""Install chatkeep into ./.venv and run it, or its test suite.

    python3 dev.py run    install, then serve chatkeep on the embedded SQLite default
    python3 dev.py test   install with the test tools, then lint, type-check and test

Only Python 3.11+ is needed; everything else is installed into ./.venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def sh(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code != 0:
        sys.exit(code)


def install(extra: str | None) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"chatkeep needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extra}]" if extra else "."
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
       "-e", target)


def run(args: list[str]) -> None:
    install(None)
    sh(BIN / "chatkeep", *(args or ["serve"]))


def test(args: list[str]) -> None:
    install("test")
    sh(BIN / "ruff", "check", "src", "tests", "bench")
    sh(BIN / "ruff", "format", "--check", "src", "tests", "bench")
    sh(BIN / "mypy")
    sh(BIN / "python", "-m", "pytest", *args)


def main() -> None:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
