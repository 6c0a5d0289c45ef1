"""Benchmarks: each prints one JSON document, with a baseline measured in the same run."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def document(
    name: str, config: dict[str, Any], about: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The head of a benchmark's JSON document: what ran, when, on what (`about`, or machine())
    and with which settings."""
    return {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() if about is None else about,
        "config": config,
    }
