"""The monitor workers' busy time and handled events, read from their ``/health``.

A URL whose host name resolves to several addresses (a Kubernetes headless Service) reads every one of
them: the workers an autoscaler adds are found without listing them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.advisor.domain.advice import WorkerReading


class MonitorHealth:
    """The service's ``WorkerSource``: a worker that does not answer is left out of this reading."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 2.0) -> None:
        self.urls = list(urls)
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def read(self) -> list[WorkerReading]:
        urls = [u for url in self.urls for u in await every_address(url)]
        answers = await asyncio.gather(*(self.client.get(url) for url in urls), return_exceptions=True)
        readings = []
        for url, answer in zip(urls, answers, strict=True):
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


async def every_address(url: str) -> list[str]:
    """``url`` once per address its host name resolves to; as given for an address, localhost or a failure."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return [url]
    except ValueError:
        pass
    if host in ("", "localhost"):
        return [url]
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, parts.port, type=socket.SOCK_STREAM)
    except OSError:
        return [url]  # the read fails and says so, like any worker that does not answer
    addresses = sorted({str(info[4][0]) for info in found})
    port = f":{parts.port}" if parts.port else ""
    return [
        urlunsplit(parts._replace(netloc=f"[{a}]{port}" if ":" in a else f"{a}{port}")) for a in addresses
    ] or [url]
