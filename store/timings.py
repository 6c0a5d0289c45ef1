"""Opt-in timings of each update's way through the bot, for benchmarks/deadline_rush.py: with
CCN_TIMINGS=<path>, the process writes `<path>.<pid>.json` at exit — per kind of update the
time waiting for its lane, in its handler, sending its answer; the collector's pauses; the
pace's waits; polling's reads; and the same by 10 s window, counted from the first thing timed
(the first poll), as the benchmark's windows are. Unset, nothing is measured (`STATS` is None)."""

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
WINDOW_S = 10


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
        # window number -> "kind/phase" -> seconds
        self.windows: defaultdict[int, defaultdict[str, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._began: float | None = None
        self._gc_began = 0.0
        gc.callbacks.append(self._gc)
        atexit.register(self.write)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.add(f"gc/gen{info['generation']}", time.perf_counter() - self._gc_began)

    def add(self, key: str, seconds: float) -> None:
        self.phases[key].append(seconds)
        now = time.perf_counter()
        if self._began is None:
            if key.startswith("gc/"):
                return
            self._began = now
        self.windows[int((now - self._began) // WINDOW_S)][key].append(seconds)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def write(self) -> None:
        data = {
            "pid": os.getpid(),
            "phases": {k: _summary(v) for k, v in sorted(self.phases.items())},
            "counts": dict(sorted(self.counts.items())),
            "windows": {
                str(w): {k: _summary(v) for k, v in sorted(phases.items())}
                for w, phases in sorted(self.windows.items())
            },
        }
        target = self.path.with_name(f"{self.path.name}.{os.getpid()}.json")
        with suppress(OSError):
            target.write_text(json.dumps(data, indent=1))


_path = os.environ.get(VARIABLE)
STATS: Timings | None = Timings(Path(_path)) if _path else None
