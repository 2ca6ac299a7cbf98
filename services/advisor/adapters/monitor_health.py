"""The monitor workers' busy time and handled events, read from their ``/health``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from services.advisor.domain.advice import WorkerReading


class MonitorHealth:
    """The service's ``WorkerSource``: a worker that does not answer is left out of this reading."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 2.0) -> None:
        self.urls = list(urls)
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def read(self) -> list[WorkerReading]:
        answers = await asyncio.gather(*(self.client.get(url) for url in self.urls), return_exceptions=True)
        readings = []
        for url, answer in zip(self.urls, answers, strict=True):
            if isinstance(answer, BaseException):
                continue
            try:
                body = answer.json()
                readings.append(
                    WorkerReading(
                        url,
                        float(body["busy_s"]),
                        int(body["handled_events"]),
                        cpu_s=_optional(body, "cpu_s"),
                        clickhouse_wait_s=_optional(body, "clickhouse_wait_s"),
                        running_s=_optional(body, "running_s"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # an older monitor without the figures, or not a monitor at all
        return readings

    async def close(self) -> None:
        await self.client.aclose()


def _optional(body: dict[str, object], name: str) -> float | None:
    """A figure an older monitor does not report: None."""
    value = body.get(name)
    return float(value) if isinstance(value, (int, float)) else None
