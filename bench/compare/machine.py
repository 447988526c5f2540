"""What the numbers were measured on: cores, Python, package and server versions."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata


def versions(packages: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution ("python": the interpreter's)."""
    found = {}
    for name in sorted(set(packages)):
        if name == "python":
            found[name] = platform.python_version()
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def describe(servers: Iterable[str]) -> dict[str, object]:
    cpus = os.cpu_count() or 0
    summary = ", ".join(
        [
            f"{cpus} CPUs",
            f"{platform.system()} {platform.machine()}",
            f"Python {platform.python_version()}",
            *list(servers),
        ]
    )
    return {
        "cpus": cpus,
        "system": platform.platform(),
        "python": sys.version.split()[0],
        "summary": summary,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
    }
