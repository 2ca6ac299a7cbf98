"""What a model server costs: requests served and process CPU seconds, read from counters, never per event.

A standalone model server (``python -m services.serving``) serves one model, so its whole process CPU (HTTP,
model, publishing) is that model's serving CPU. The counters are two integers bumped per request; a reporter
reads them every ``DRIFTLOOP_SERVING_USAGE_SECONDS`` and records the difference as one ``serving_usage`` row.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

USAGE_COLUMNS = ["at", "model_name", "alias", "server", "requests", "predictions", "cpu_s", "interval_s"]


def serving_usage_ddl(table: str = "serving_usage") -> str:
    """One row per model server and reporting interval; kept (a row a minute per server is small)."""
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        at DateTime64(3, 'UTC'),
        model_name LowCardinality(String),
        alias LowCardinality(String),
        server String,
        requests UInt64,
        predictions UInt64,
        cpu_s Float64,
        interval_s Float64
    )
    ENGINE = MergeTree
    PARTITION BY toYYYYMM(at)
    ORDER BY (model_name, at, server)
    """


@dataclass(frozen=True)
class Reading:
    """The counters at one moment, cumulative since the server started."""

    requests: int
    predictions: int
    cpu_s: float
    clock_s: float


def usage_row(
    earlier: Reading, later: Reading, at: datetime, model_name: str, alias: str, server: str
) -> list[Any]:
    """A ``serving_usage`` row for what happened between two readings.

    >>> a, b = Reading(10, 12, 1.5, 100.0), Reading(40, 45, 2.25, 160.0)
    >>> usage_row(a, b, None, "churn", "production", "host:1")[1:]
    ['churn', 'production', 'host:1', 30, 33, 0.75, 60.0]
    """
    return [
        at,
        model_name,
        alias,
        server,
        later.requests - earlier.requests,
        later.predictions - earlier.predictions,
        round(max(0.0, later.cpu_s - earlier.cpu_s), 6),
        round(later.clock_s - earlier.clock_s, 3),
    ]


def process_cpu_seconds() -> float:
    """User plus system CPU seconds of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class UsageMeter:
    """Counts requests and predictions (thread-safe, a lock and two additions per request)."""

    def __init__(
        self,
        cpu_seconds: Callable[[], float] = process_cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = 0
        self._predictions = 0

    def served(self, predictions: int) -> None:
        with self._lock:
            self._requests += 1
            self._predictions += predictions

    def read(self) -> Reading:
        with self._lock:
            requests, predictions = self._requests, self._predictions
        return Reading(requests, predictions, self._cpu_seconds(), self._clock())
