"""Machine facts printed with every benchmark table."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cython_version() -> str:
    try:
        return version("Cython")
    except PackageNotFoundError:
        return "not installed (the core was built in an isolated environment)"


def facts() -> str:
    return (
        f"CPU: {cpu_model()} ({os.cpu_count()} cores) | Python {platform.python_version()} "
        f"| Cython {cython_version()} | {platform.system()} {platform.release()}"
    )
