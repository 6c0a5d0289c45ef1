"""Opt-in timings of each update's way through the bot, for benchmarks/deadline_rush.py: with
CCN_TIMINGS=<path>, the process writes `<path>.<pid>.json` at exit — per kind of update the
time waiting for its lane, in its handler, sending its answer; the collector's pauses; the
pace's waits; polling's reads. Unset, nothing is measured (`STATS` is None)."""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from collections import defaultdict
from contextlib import suppress
from pathlib import Path
from typing import Any

VARIABLE = "CCN_TIMINGS"


def _summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 1)

    return {
        "n": len(ordered),
        "p50_ms": at(50),
        "p95_ms": at(95),
        "max_ms": round(ordered[-1] * 1000, 1),
        "total_s": round(sum(ordered), 2),
    }


class Timings:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.phases: defaultdict[str, list[float]] = defaultdict(list)  # "kind/phase": seconds
        self.counts: defaultdict[str, int] = defaultdict(int)
        self._gc_began = 0.0
        gc.callbacks.append(self._gc)
        atexit.register(self.write)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.phases[f"gc/gen{info['generation']}"].append(time.perf_counter() - self._gc_began)

    def add(self, key: str, seconds: float) -> None:
        self.phases[key].append(seconds)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def write(self) -> None:
        data = {
            "pid": os.getpid(),
            "phases": {k: _summary(v) for k, v in sorted(self.phases.items())},
            "counts": dict(sorted(self.counts.items())),
        }
        target = self.path.with_name(f"{self.path.name}.{os.getpid()}.json")
        with suppress(OSError):
            target.write_text(json.dumps(data, indent=1))


_path = os.environ.get(VARIABLE)
STATS: Timings | None = Timings(Path(_path)) if _path else None
