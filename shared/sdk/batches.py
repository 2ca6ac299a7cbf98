"""Keyed, batched, acknowledged writes with aiokafka: one request per partition instead of one per event.

``producer.send()`` costs a future and a lookup per event; building one ``BatchBuilder`` per partition
and awaiting its single future moves several times more events per second. The partition of a key is
murmur2 like the Java client's, so every producer (SDK, ingest, model servers) keeps a model on one
partition. Shared by the SDK's shipper and the ingest service.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

KeyedRecord = tuple[str, bytes, bytes]
"""(topic, key, value)."""

DELIVERY_ERRORS = (KafkaError, OSError, TimeoutError)


class KeyPartitioner:
    """Key → partition, with the topic's partition list fetched once per producer."""

    def __init__(self) -> None:
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._cache: dict[tuple[str, bytes], int] = {}

    async def load(self, producer: AIOKafkaProducer, topics: Sequence[str]) -> None:
        for topic in topics:
            if topic not in self._partitions:
                self._partitions[topic] = sorted(await producer.partitions_for(topic))
        self._cache.clear()

    def reset(self) -> None:
        self._partitions.clear()
        self._cache.clear()

    def __call__(self, topic: str, key: bytes) -> int:
        cached = self._cache.get((topic, key))
        if cached is None:
            partitions = self._partitions[topic]
            cached = self._partitioner(key, partitions, partitions)
            self._cache[(topic, key)] = cached
        return cached


async def send_keyed(
    producer: AIOKafkaProducer,
    records: Sequence[KeyedRecord],
    partitioner: KeyPartitioner,
    on_ack: Callable[[], None] | None = None,
) -> tuple[list[int], BaseException | None]:
    """Send and wait for every acknowledgement; returns the indexes of records NOT acknowledged and why.

    Records handed to the producer whose batch failed, and records never handed over (an error before
    their batch was submitted), are both returned: the caller decides whether to retry or report them.
    ``on_ack`` is called as each batch is answered, so a caller can tell a slow broker from a dead one.
    """
    await partitioner.load(producer, sorted({topic for topic, _, _ in records}))
    by_key: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for index, (topic, key, _) in enumerate(records):
        by_key[(topic, key)].append(index)
    # order matters per key only, so keys sharing a partition may simply follow each other
    grouped: dict[tuple[str, int], list[int]] = defaultdict(list)
    for (topic, key), indexes in by_key.items():
        grouped[(topic, partitioner(topic, key))].extend(indexes)
    sent: list[tuple[asyncio.Future[Any], list[int]]] = []
    unsent: list[int] = []
    error: BaseException | None = None
    for (topic, partition), group in grouped.items():
        if error is not None:
            unsent.extend(group)
            continue
        batch, start = producer.create_batch(), 0
        try:
            for position, index in enumerate(group):
                _, key, value = records[index]
                if batch.append(key=key, value=value, timestamp=None) is None:
                    future = await producer.send_batch(batch, topic, partition=partition)
                    _watch(future, on_ack)
                    sent.append((future, group[start:position]))
                    batch, start = producer.create_batch(), position
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit in one batch")
            if start < len(group):
                future = await producer.send_batch(batch, topic, partition=partition)
                _watch(future, on_ack)
                sent.append((future, group[start:]))
        except DELIVERY_ERRORS as exc:
            error = exc
            unsent.extend(group[start:])  # handed to no producer: safe to send again
    results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
    failed: list[int] = []
    for (_, members), result in zip(sent, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, DELIVERY_ERRORS):
                raise result
            error = error or result
            failed.extend(members)
    return sorted(failed + unsent), error


def _watch(future: asyncio.Future[Any], on_ack: Callable[[], None] | None) -> None:
    if on_ack is not None:
        future.add_done_callback(lambda _: on_ack())
