"""The usage reporter: a thread that records the model server's requests and CPU every interval."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.serving.domain.usage import UsageMeter, usage_row

log = logging.getLogger(__name__)


class UsageReporter:
    """Every ``interval_s`` writes one ``serving_usage`` row: the counts since the last row ClickHouse took.

    A failed write loses nothing: the next row covers both intervals. The last partial interval is written
    on :meth:`stop`; a server killed with -9 loses at most one interval.
    """

    def __init__(
        self,
        meter: UsageMeter,
        write: Callable[[list[Any]], None],
        *,
        model_name: str,
        alias: str,
        server: str,
        interval_s: float,
    ) -> None:
        self.meter = meter
        self._write = write
        self._identity = (model_name, alias, server)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = meter.read()
        self._failing = False

    def start(self) -> None:
        self._last = self.meter.read()
        self._thread = threading.Thread(target=self._run, name="serving-usage", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.report()

    def report(self) -> bool:
        """Write what was served since the last written row; True when ClickHouse took it."""
        now = self.meter.read()
        row = usage_row(self._last, now, datetime.now(UTC), *self._identity)
        try:
            self._write(row)
        except Exception as exc:  # ClickHouse away: keep counting, the next row covers this interval too
            if not self._failing:
                log.warning("cannot record serving usage in ClickHouse (%s); will retry", exc)
            self._failing = True
            return False
        self._last, self._failing = now, False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report()
