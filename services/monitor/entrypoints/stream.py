"""The monitor's Kafka loop: take a batch (≤ batch size records or ≤ batch seconds), hand it over, commit.

One aiokafka consumer per worker in the monitor's consumer group, so several workers share the topics by
partition. Three batches are in hand at most: batch N+2 is taken and decoded while N+1 is stored and the
windows N closed are judged (``Monitor.store`` and ``Monitor.advance``), so neither the worker nor ClickHouse
waits on the other. Batches advance and commit strictly in order. Offsets are committed by hand, after the
batch's rows, the models' checkpoints and any announcements were accepted; on a rebalance the batches in
hand finish (and commit) before their partitions are given up. ``getmany`` hands over thousands of records
per call, where Faust streams pay Python overhead per message (measured in docs/monitor.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from services.monitor.adapters.kafka import RETRY_MAX_S, retry
from services.monitor.domain.batches import Batch
from services.monitor.domain.intake import Record
from services.monitor.service import Monitor
from shared.kafka.admin import acreate_topics
from shared.settings import Settings
from shared.topics import monitor_group

log = logging.getLogger(__name__)


MAX_POLL_INTERVAL_MS = 7 * 24 * 3600 * 1000
"""A worker waits for ClickHouse as long as it is away, polling no records meanwhile. With Kafka's default
(5 min) the group then dropped it, and aiokafka does not rejoin a consumer idle that long until it polls,
while the worker waited for its new assignment before polling: a ClickHouse outage of 10 minutes left the
worker stuck after ClickHouse returned. A dead worker is still found by its missed heartbeats
(``DRIFTLOOP_MONITOR_SESSION_TIMEOUT_SECONDS``)."""


def consumer_options(settings: Settings) -> dict[str, Any]:
    """How the worker's consumer is configured (``bootstrap`` builds it with these)."""
    timeout_ms = int(settings.monitor_session_timeout_seconds * 1000)
    return {
        "group_id": monitor_group(settings.topic_prefix),
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "session_timeout_ms": timeout_ms,
        "heartbeat_interval_ms": max(timeout_ms // 4, 100),
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
    }


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
    """Takes batches from ``consumer`` and hands them to ``monitor``, committing each once it is handled."""

    def __init__(self, settings: Settings, monitor: Monitor, consumer: AIOKafkaConsumer) -> None:
        self.settings = settings
        self.monitor = monitor
        self.publisher = monitor.publisher
        self.metrics = monitor.metrics
        self.dependencies = monitor.dependencies
        self.consumer = consumer
        self.kafka = f"Kafka at {settings.kafka_bootstrap}"
        self.clickhouse = f"ClickHouse at {settings.clickhouse_url}"
        self.in_hand: deque[asyncio.Task[None]] = deque()
        self.assigned = asyncio.Event()
        self.running = False
        self.running_since: float | None = None
        self.idle_s = 0.0
        self.handled = 0
        self._cpu_at = self._waited_at = self._settled_at = 0.0

    def status(self) -> dict[str, Any]:
        waiting = self.monitor.waiting_for()
        return {
            "running": self.running and not waiting,
            "degraded": bool(waiting),
            "waiting_for": waiting,
            "assigned_partitions": len(self.consumer.assignment()) if self.running else 0,
            "partitions": self.partitions(),
            "models": self.monitor.checkpoints.models(),
            "consumer_lag": self.monitor.consumer_lag,
            # the scaling advisor's capacity reading: handled_events / busy_s is events/s at 100% busy
            **self.spent(),
            "handled_events": self.handled,
        }

    def spent(self) -> dict[str, float]:
        """What the worker spent since it started running: ``busy_s`` is the run time minus the time it
        waited for records with no batch in hand; ``cpu_s`` (process CPU) and ``clickhouse_wait_s`` are two
        parts of it, which the advisor also reads (docs/advisor.md).

        Not "run time minus the time in ``getmany``": the batches in hand are stored and judged while the
        loop waits in ``getmany``, so that counted work as idle, and on a loaded machine it took the worker
        for half as busy as it was (the advisor then saw twice the real capacity). Nor CPU plus ClickHouse
        waits alone: the Kafka commits, the publisher's confirmations and a slow fetch are work too.
        """
        if self.running_since is None:
            return {"busy_s": 0.0, "cpu_s": 0.0, "clickhouse_wait_s": 0.0, "running_s": 0.0}
        cpu = time.process_time() - self._cpu_at
        waited = self.monitor.clickhouse_waits() - self._waited_at
        running = time.monotonic() - self.running_since
        return {
            "busy_s": round(max(0.0, running - self.idle_s), 3),
            "cpu_s": round(cpu, 3),
            "clickhouse_wait_s": round(waited, 3),
            "running_s": round(running, 3),
        }

    def partitions(self) -> list[str]:
        """The partitions of the events topics this worker owns (``predictions-0``): its share of the models."""
        if not self.running:
            return []
        streams = set(self.monitor.streams)
        return sorted(
            f"{tp.topic}-{tp.partition}" for tp in self.consumer.assignment() if tp.topic in streams
        )

    async def _prepare(self) -> None:
        """Tables, topics and the Kafka clients; each dependency that is away is waited for, never fatal."""
        await retry(
            self.dependencies,
            self.clickhouse,
            lambda: asyncio.to_thread(self.monitor.open),
            errors=(Exception,),
        )
        await retry(
            self.dependencies,
            self.kafka,
            lambda: acreate_topics(  # with the configured partitions, not the broker's default
                self.settings,  # the whole connection (TLS, SASL), not only the bootstrap address
                [*self.monitor.subscribed, self.monitor.topics.drift_events],
                self.settings.kafka_partitions,
                self.settings.kafka_replication_factor,
            ),
            errors=(Exception,),
        )
        await retry(self.dependencies, self.kafka, self.publisher.start, errors=(KafkaError, OSError))
        self.consumer.subscribe(self.monitor.subscribed, listener=_Handover(self))
        await retry(self.dependencies, self.kafka, self.consumer.start, errors=(KafkaError, OSError))

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batches in hand are finished and committed first."""
        await self._prepare()
        self.running = True
        self.running_since = time.monotonic()
        self._cpu_at, self._waited_at = time.process_time(), self.monitor.clickhouse_waits()
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
                task = asyncio.create_task(self._handle(mine, decoded, previous))
                task.add_done_callback(self._settled)
                self.in_hand.append(task)
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

    def _working(self) -> bool:
        return any(not task.done() for task in self.in_hand)

    def _settled(self, _: asyncio.Task[None]) -> None:
        if not self._working():
            self._settled_at = time.monotonic()  # the last batch in hand is done: idle from here

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
            waited = time.monotonic()
            got = await self.consumer.getmany(timeout_ms=int(left * 1000), max_records=size - taken)
            # time in getmany is waiting for records (under a backlog it returns at once, from the prefetch)
            # idle only while no batch is in hand: waiting for records while one is stored or judged is work
            idle = 0.0 if self._working() else time.monotonic() - max(waited, self._settled_at)
            self.idle_s += idle
            self.metrics.idle_seconds.inc(idle)
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
        await self._commit(next_offsets(batch))
        handled = sum(len(records) for records in batch.values())
        self.handled += handled
        self.metrics.handled.inc(handled)
        self.monitor.consumer_lag = self._lag(batch)
        self.metrics.lag.set(self.monitor.consumer_lag)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit a handled batch, waiting out a broker outage (a commit lost in one would replay the batch)."""
        delay = 0.5
        while True:
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # a rebalance took the partitions meanwhile: their new owner replays, the sinks deduplicate
                log.warning("could not commit a handled batch (%s); it will be replayed", exc)
                return
            except KafkaError as exc:
                self.dependencies.away(self.kafka, str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.dependencies.back(self.kafka)
            return

    def _lag(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Records behind the broker's high watermark, over the partitions of the batch just handled."""
        behind = 0
        for tp, offset in next_offsets(batch).items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                behind += max(0, highwater - offset)
        return behind
