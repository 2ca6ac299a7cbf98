"""The advisor's loop: one ``tick`` every ``advisor_interval_seconds``; a dependency away is waited for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from clickhouse_connect.driver.exceptions import Error as ClickHouseError

from services.advisor.service import Advisor

log = logging.getLogger("services.advisor")
AWAY = (KafkaError, ClickHouseError, OSError, TimeoutError)
READINGS = "Kafka and ClickHouse (the advisor's readings)"


class AdvisorLoop:
    """Ticks the advisor until stopped; ``status`` is what ``/health`` shows."""

    def __init__(
        self,
        advisor: Advisor,
        interval_s: float,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        self.advisor = advisor
        self.interval_s = interval_s
        self._start, self._stop = start, stop
        self.running = False
        self.ticks = 0

    def status(self) -> dict[str, Any]:
        waiting = self.advisor.dependencies.status().get("unavailable", {})
        return {
            "running": self.running and not waiting,
            "degraded": bool(waiting),
            "waiting_for": waiting,
            "ticks": self.ticks,
            **self.advisor.status(),
        }

    async def open(self) -> None:
        """Start the Kafka clients (raises while Kafka is away; ``run`` waits for it)."""
        await self._start()

    async def close(self) -> None:
        await self._stop()

    async def run(self, stopping: asyncio.Event) -> None:
        deps = self.advisor.dependencies
        delay = 0.5
        while not stopping.is_set():
            try:
                await self._start()
                break
            except AWAY as exc:
                deps.away(READINGS, str(exc) or type(exc).__name__)
                await _wait(stopping, delay)
                delay = min(delay * 2, 10.0)
        self.running = True
        try:
            while not stopping.is_set():
                try:
                    for event in await self.advisor.tick():
                        log.info("advice: %s", event.message)
                    deps.back(READINGS)
                except AWAY as exc:
                    deps.away(READINGS, str(exc) or type(exc).__name__)
                self.ticks += 1
                await _wait(stopping, self.interval_s)
        finally:
            self.running = False
            await self._stop()


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
