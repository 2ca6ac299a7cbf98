"""The worker's Kafka publishing: announcements and dead letters, confirmed before a batch commits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.dependencies import Dependencies

T = TypeVar("T")
RETRY_MAX_S = 10.0


async def retry(
    dependencies: Dependencies,
    name: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
) -> T:
    """``attempt`` until it succeeds, waiting 0.5 s doubling to ``RETRY_MAX_S`` between tries."""
    delay = 0.5
    while True:
        try:
            result = await attempt()
        except errors as exc:
            dependencies.away(name, str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        dependencies.back(name)
        return result


class Publisher:
    """The service's ``Publisher``: messages queued as the batch is handled, confirmed before it commits.

    A message the broker did not take (it was away longer than the producer's timeout) is sent again
    until it is, so a batch is never committed with an announcement or a dead letter missing.
    """

    def __init__(self, producer: AIOKafkaProducer, dependencies: Dependencies, name: str) -> None:
        self.dependencies = dependencies
        self.kafka = name
        """How ``/health`` names the broker while it is away."""
        self.producer = producer
        self._pending: list[tuple[asyncio.Future[Any], str, bytes, bytes]] = []

    async def start(self) -> None:
        await self.producer.start()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        future = await retry(
            self.dependencies,
            self.kafka,
            lambda: self.producer.send(topic, value, key=key),
            errors=(KafkaError,),
        )
        self._pending.append((future, topic, key, value))

    async def confirm(self) -> None:
        """Wait until the broker acknowledged everything queued, sending again what it did not take."""
        while self._pending:
            pending, self._pending = self._pending, []
            results = await asyncio.gather(*(f for f, *_ in pending), return_exceptions=True)
            for (_, topic, key, value), result in zip(pending, results, strict=True):
                if isinstance(result, KafkaError):
                    self.dependencies.away(self.kafka, str(result) or type(result).__name__)
                    await self.send(topic, key, value)
                elif isinstance(result, BaseException):
                    raise result

    async def stop(self) -> None:
        await self.producer.stop()
