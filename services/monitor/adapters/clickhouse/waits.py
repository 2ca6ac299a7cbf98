"""How long this process has waited for ClickHouse: wall time with at least one request in flight.

The scaling advisor counts a worker busy while it computes (process CPU) or waits for ClickHouse; several
sinks wait side by side (a batch's inserts beside the judging), so the waits are a union, not a sum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RequestClock:
    """Thread-safe: sinks run their requests in worker threads.

    >>> ticks = iter([0.0, 4.0, 6.0, 7.0])
    >>> clock = RequestClock(lambda: next(ticks))
    >>> clock.enter(); clock.enter(); clock.leave(); clock.leave()  # two requests overlapping from 0 to 4
    >>> clock.enter(); clock.leave()  # one from 6 to 7
    >>> clock.waited_s()
    5.0
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0
        self._total = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = self._now()
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._total += self._now() - self._since

    @contextmanager
    def timing(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def waited_s(self) -> float:
        """Seconds waited so far, the request now in flight included."""
        with self._lock:
            return self._total + (self._now() - self._since if self._in_flight else 0.0)


CLICKHOUSE_WAITS = RequestClock()
"""The process's clock: one process is one monitor worker, and all its ClickHouse clients count here."""
