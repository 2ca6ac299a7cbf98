"""What a training run cost: wall time, CPU seconds, peak memory, rows and bytes, measured around the run."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CostMeter:
    """Started at the beginning of a run; ``record()`` gives the figures so far.

    CPU seconds are the whole process's (the estimator's OpenMP threads included), so they are exact when
    the worker runs one run at a time, which it does. Peak memory is the process's peak RSS.
    """

    wall_start: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=lambda: _cpu_seconds())
    rows: int = 0
    bytes_read: int = 0
    artifact_bytes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    _lap_start: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        """Close ``stage``: the wall seconds since the previous lap, so a slow run shows where it went."""
        now = time.perf_counter()
        self.stages[stage] = round(now - self._lap_start, 3)
        self._lap_start = now

    def record(self) -> CostRecord:
        return CostRecord(
            wall_s=round(time.perf_counter() - self.wall_start, 3),
            cpu_s=round(_cpu_seconds() - self.cpu_start, 3),
            peak_memory_mb=round(_peak_rss_mb(), 1),
            rows=self.rows,
            bytes_read=self.bytes_read,
            artifact_bytes=dict(self.artifact_bytes),
            stages_s=dict(self.stages),
        )


@dataclass(frozen=True)
class CostRecord:
    wall_s: float
    cpu_s: float
    peak_memory_mb: float
    rows: int
    bytes_read: int
    artifact_bytes: dict[str, int]
    stages_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
