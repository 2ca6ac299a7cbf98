"""The HTTP services' request counters (ingest, registry, model servers), read from their ``/metrics``.

Like the monitor workers' URLs, a host name that resolves to several addresses (a headless Service) is
read at each of them: every replica counts its own requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.advisor.domain.http import HttpReading
from shared.http_metrics import LATENCY, REQUESTS


class HttpServices:
    """The service's ``HttpSource``: a service that does not answer is left out of this reading."""

    def __init__(self, urls: Mapping[str, str], timeout_s: float = 2.0) -> None:
        self.urls = dict(urls)
        self.names = list(self.urls)
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def read(self) -> list[HttpReading]:
        names = list(self.urls)
        answers = await asyncio.gather(
            *(self.client.get(self.urls[n]) for n in names), return_exceptions=True
        )
        at = time.time()
        readings = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException) or answer.status_code != 200:
                continue
            reading = parse(name, at, answer.text)
            if reading is not None:
                readings.append(reading)
        return readings

    async def close(self) -> None:
        await self.client.aclose()


def parse(name: str, at: float, text: str) -> HttpReading | None:
    """Totals over every ``service`` label in one ``/metrics`` page; None when it has no request counter."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    seen = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{REQUESTS}_total":
                seen = True
                requests += sample.value
                if sample.labels.get("code") == "5xx":
                    errors += sample.value
            elif sample.name == f"{LATENCY}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    if not seen:
        return None
    return HttpReading(name, at, requests, errors, tuple(sorted(buckets.items(), key=lambda b: b[0])))
