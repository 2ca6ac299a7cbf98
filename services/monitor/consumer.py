"""The monitor's Kafka loop: take a batch (≤ batch size records or ≤ batch seconds), hand it over, commit.

One aiokafka consumer per worker in the monitor's consumer group, so several workers share the topics by
partition. Three batches are in hand at most: batch N+2 is taken and decoded while N+1 is stored and the
windows N closed are judged (``Monitor.store`` and ``Monitor.advance``), so neither the worker nor ClickHouse
waits on the other. Batches advance and commit strictly in order. Offsets are committed by hand, after the
batch's rows, the models' checkpoints and any announcements were accepted; on a rebalance the batches in
hand finish (and commit) before their partitions are given up. Faust streams were measured at ~2,000 records/s per worker on this kind of machine, since
they pay Python overhead per message; ``getmany`` hands over thousands of records per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
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
    """Revocation waits for the batches in hand; then the worker forgets what it cached about its models.

    No new batch starts between a revocation and the next assignment, so none is handled for partitions that
    have just moved to another worker.
    """

    def __init__(self, loop: MonitorLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.loop.assigned.clear()
        await asyncio.gather(*self.loop.in_hand, return_exceptions=True)  # failures surface in the loop
        self.loop.monitor.forget()
        log.info("partitions revoked: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.loop.metrics.partitions.set(len(assigned))
        self.loop.assigned.set()
        log.info("partitions assigned: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))


#: Batches being stored or advanced at once: N+1 is stored while N's windows are judged.
IN_HAND = 2


class MonitorLoop:
    def __init__(
        self, settings: Settings, monitor: Monitor, publisher: Publisher, metrics: MonitorMetrics
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.publisher = publisher
        self.metrics = metrics
        self.in_hand: deque[asyncio.Task[None]] = deque()
        self.assigned = asyncio.Event()
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
        """Consume until ``stopping`` is set; the batches in hand are finished and committed first."""
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
        try:
            while not stopping.is_set():
                taken = await self._take(stopping)
                if not taken:
                    continue
                decoded = self.monitor.decode(by_topic(taken))
                while len(self.in_hand) >= IN_HAND:
                    await self.in_hand.popleft()  # raises what the batch raised: the worker stops uncommitted
                await self.assigned.wait()  # a rebalance in progress: the new assignment decides what is mine
                owned = self.consumer.assignment()
                mine = {
                    tp: records for tp, records in taken.items() if tp in owned
                }  # the rest: the new owner's
                if not mine:
                    continue
                if len(mine) < len(taken):
                    decoded = self.monitor.decode(by_topic(mine))
                previous = self.in_hand[-1] if self.in_hand else None
                self.in_hand.append(asyncio.create_task(self._handle(mine, decoded, previous)))
                await asyncio.sleep(0)  # its insert starts now: taking records already fetched never yields
            while self.in_hand:
                await self.in_hand.popleft()
        finally:
            for task in self.in_hand:
                task.cancel()
            self.running = False
            await self.consumer.stop()
            await self.publisher.stop()
            self.monitor.close()

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

    async def _handle(
        self, batch: dict[TopicPartition, list[Any]], decoded: Batch, previous: asyncio.Task[None] | None
    ) -> None:
        """Store this batch while the previous one advances; then advance and commit, in batch order."""
        stored = await self.monitor.store(decoded)
        if previous is not None:
            await previous  # if it failed, so does this batch: a later commit must never skip its offsets
        await self.monitor.advance(stored)
        await self.publisher.confirm()
        try:
            await self.consumer.commit(next_offsets(batch))
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took the partitions meanwhile: their new owner replays, the sinks deduplicate
            log.warning("could not commit a handled batch (%s); it will be replayed", exc)
        self.monitor.consumer_lag = self._lag(batch)
        self.metrics.lag.set(self.monitor.consumer_lag)

    def _lag(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Records behind the broker's high watermark, over the partitions of the batch just handled."""
        behind = 0
        for tp, offset in next_offsets(batch).items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                behind += max(0, highwater - offset)
        return behind
