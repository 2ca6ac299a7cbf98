"""The monitor's Kafka loop: take a batch (≤ batch size records or ≤ batch seconds), hand it over, commit.

One aiokafka consumer per worker in the monitor's consumer group, so several workers share the topics by
partition. Offsets are committed by hand, after the batch's rows, the models' checkpoints and any
announcements were accepted; on a rebalance the batch in hand finishes (and commits) before its partitions
are given up. Faust streams were measured at ~2,000 records/s per worker on this kind of machine, since
they pay Python overhead per message; ``getmany`` hands over thousands of records per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.monitor.observability import MonitorMetrics
from services.monitor.worker import Batch, Monitor, Record
from shared.infra.kafka import acreate_topics
from shared.settings import Settings

log = logging.getLogger(__name__)


class Publisher:
    """Announcements and dead letters: queued as the batch is handled, confirmed before it commits."""

    def __init__(self, settings: Settings) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        self._pending: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        await self.producer.start()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self._pending.append(await self.producer.send(topic, value, key=key))

    async def confirm(self) -> None:
        """Wait until the broker acknowledged everything queued; raises if anything was refused."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def stop(self) -> None:
        await self.producer.stop()


def by_topic(batch: dict[TopicPartition, list[Any]]) -> dict[str, list[Record]]:
    """Records grouped per topic, each partition's in offset order."""
    out: dict[str, list[Record]] = {}
    for tp, records in batch.items():
        out.setdefault(tp.topic, []).extend(records)
    return out


def next_offsets(batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
    """What to commit for a handled batch: one past each partition's last record."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


class _Handover(ConsumerRebalanceListener):
    """Revocation waits for the batch in hand; then the worker forgets what it cached about its models."""

    def __init__(self, loop: MonitorLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self.loop.handling:
            self.loop.monitor.forget()
        log.info("partitions revoked: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.loop.metrics.partitions.set(len(assigned))
        log.info("partitions assigned: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))


class MonitorLoop:
    def __init__(
        self, settings: Settings, monitor: Monitor, publisher: Publisher, metrics: MonitorMetrics
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.publisher = publisher
        self.metrics = metrics
        self.handling = asyncio.Lock()
        self.running = False
        timeout_ms = int(settings.monitor_session_timeout_seconds * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.topic_prefix}driftloop-monitor",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            session_timeout_ms=timeout_ms,
            heartbeat_interval_ms=max(timeout_ms // 4, 100),
        )

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "assigned_partitions": len(self.consumer.assignment()) if self.running else 0,
            "consumer_lag": self.monitor.consumer_lag,
        }

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batch in hand is finished and committed first."""
        await asyncio.to_thread(self.monitor.sink.open)  # tables exist before the first record is handled
        await acreate_topics(  # with the configured partitions, not the broker's default
            self.settings.kafka_bootstrap,
            [*self.monitor.subscribed, self.monitor.topics.drift_events],
            self.settings.kafka_partitions,
            self.settings.kafka_replication_factor,
        )
        await self.publisher.start()
        self.consumer.subscribe(self.monitor.subscribed, listener=_Handover(self))
        await self.consumer.start()
        self.running = True
        storing: asyncio.Task[None] | None = None
        try:
            while not stopping.is_set():  # batch N is stored while batch N+1 is taken and decoded
                taken = await self._take(stopping)
                decoded = self.monitor.decode(by_topic(taken)) if taken else None
                if storing is not None:
                    await storing  # batches are handled and committed in order, one at a time
                    storing = None
                if taken and decoded is not None:
                    storing = asyncio.create_task(self._handle(taken, decoded))
            if storing is not None:
                await storing
        finally:
            if storing is not None and not storing.done():
                storing.cancel()
            self.running = False
            await self.consumer.stop()
            await self.publisher.stop()
            self.monitor.sink.close()

    async def _take(self, stopping: asyncio.Event) -> dict[TopicPartition, list[Any]]:
        """Records until the batch is full or ``monitor_batch_seconds`` passed since the first arrived."""
        size, within = self.settings.monitor_batch_size, self.settings.monitor_batch_seconds
        batch: dict[TopicPartition, list[Any]] = {}
        taken = 0
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while taken < size and not stopping.is_set():
            left = within if deadline is None else deadline - loop.time()
            if left <= 0:
                break
            got = await self.consumer.getmany(timeout_ms=int(left * 1000), max_records=size - taken)
            for tp, records in got.items():
                batch.setdefault(tp, []).extend(records)
                taken += len(records)
            if taken and deadline is None:
                deadline = loop.time() + within
        return batch

    async def _handle(self, batch: dict[TopicPartition, list[Any]], decoded: Batch) -> None:
        async with self.handling:
            owned = self.consumer.assignment()
            mine = {tp: records for tp, records in batch.items() if tp in owned}  # the rest: the new owner's
            if not mine:
                return
            if len(mine) < len(batch):  # a rebalance took some partitions since the batch was decoded
                decoded = self.monitor.decode(by_topic(mine))
            await self.monitor.handle(decoded)
            await self.publisher.confirm()
            try:
                await self.consumer.commit(next_offsets(mine))
            except (CommitFailedError, IllegalStateError) as exc:
                # a rebalance took the partitions meanwhile: their new owner replays, the sinks deduplicate
                log.warning("could not commit a handled batch (%s); it will be replayed", exc)
            self.monitor.consumer_lag = self._lag(mine)
            self.metrics.lag.set(self.monitor.consumer_lag)

    def _lag(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Records behind the broker's high watermark, over the partitions of the batch just handled."""
        behind = 0
        for tp, offset in next_offsets(batch).items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                behind += max(0, highwater - offset)
        return behind
