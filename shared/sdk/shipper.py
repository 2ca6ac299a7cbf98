"""Moves buffered events to Kafka in order, one acknowledged chunk at a time, and spills to disk when stuck.

Runs on the SDK's own event loop. The producer is idempotent with ``acks=all``: aiokafka retries a batch
it has sent until the broker takes it, with the same producer id and sequence numbers, so a broker
restart neither loses nor duplicates it. While a chunk waits (broker down), newly logged events are
spilled to the disk spool after ``spill_after_s``; once the chunk is acknowledged the shipper replays the
disk, oldest first, then memory.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.kafka.clients import producer as kafka_producer
from shared.kafka.logs import ClientLogGate, gate_this_thread, release
from shared.sdk.batches import KeyPartitioner, send_keyed
from shared.sdk.buffer import EventBuffer
from shared.sdk.config import ProducerConfig
from shared.sdk.spool import Record

log = logging.getLogger("shared.sdk")


class Shipper:
    """The background half of the SDK: owns the aiokafka producer and the delivery loop."""

    def __init__(self, config: ProducerConfig, buffer: EventBuffer) -> None:
        self.config = config
        self.buffer = buffer
        self.topics = (config.predictions_topic, config.labels_topic)
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = KeyPartitioner()
        self._stalled_since: float | None = None
        self._in_flight: list[Record] = []
        self._position: tuple[int, int] | None = None
        self._chunk_size = 0
        self.last_error: BaseException | None = None
        self._stopping = False
        self.failed_attempts = 0
        self.connected = False
        self.stalled = False
        self._away_since: float | None = None  # monotonic; set while an outage is being reported
        self._gate: ClientLogGate | None = None
        self._held_back = 0

    # ------------------------------------------------------------------ producer

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        producer = kafka_producer(
            self.config.connection(),
            client_id=self.config.client_id,
            linger_ms=0,  # batches are built whole from the buffer; linger_ms paces the buffer instead
            compression_type=self.config.compression,
            max_batch_size=self.config.max_batch_bytes,
            request_timeout_ms=self.config.request_timeout_ms,
            retry_backoff_ms=int(self.config.retry_backoff_s * 1000),
            **self.config.extra_producer_options,
        )
        try:
            await producer.start()
            await self._partitioner.load(producer, self.topics)
        except BaseException:
            await _stop_quietly(producer, 1.0)
            raise
        self._producer = producer
        self.connected = True
        return producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.connected = False
        self._partitioner.reset()
        if producer is not None:
            await _stop_quietly(producer, 2.0)

    async def _send_chunk(self, producer: AIOKafkaProducer, records: list[Record]) -> list[Record]:
        """Send a chunk and wait for every answer; returns the records not acknowledged (in order)."""
        keyed = [(self.topics[r.stream], r.key, r.value) for r in records]
        left, error = await send_keyed(producer, keyed, self._partitioner, on_ack=self._acknowledged)
        self.last_error = error
        return [records[i] for i in left]

    def _acknowledged(self) -> None:
        """A batch was answered: the broker is alive, even if a big chunk takes a while."""
        if self._stalled_since is not None:
            self._stalled_since = time.monotonic()

    async def run(self) -> None:
        """Deliver until stopped; never raises for broker trouble (it waits, spills and retries)."""
        self._gate = gate_this_thread()  # this loop's thread runs the producer: its complaints are ours
        spiller = asyncio.create_task(self._spill_while_stalled())
        try:
            while True:
                if not self._in_flight:
                    records, position = self.buffer.take(self.config.chunk_events)
                    if not records:
                        if self._stopping:
                            return
                        await asyncio.sleep(self.config.linger_ms / 1000)
                        continue
                    self._in_flight, self._position, self._chunk_size = records, position, len(records)
                self._stalled_since = time.monotonic()
                try:
                    producer = await self._ensure_producer()
                    left = await self._send_chunk(producer, self._in_flight)
                except (KafkaError, OSError, TimeoutError) as exc:
                    self.last_error, left = exc, self._in_flight
                self.buffer.delivered_now(len(self._in_flight) - len(left))
                self._in_flight = left
                if left:
                    await self._failed(self.last_error)
                    if self._stopping:
                        return
                    continue
                self._stalled_since = None
                self._kafka_back()
                if self._position is not None:
                    self.buffer.release(self._position, self._chunk_size)
        finally:
            spiller.cancel()
            release(self._gate)

    async def _failed(self, error: BaseException | None) -> None:
        self.failed_attempts += 1
        self._kafka_away(f"unavailable ({error!r})")
        await self._drop_producer()
        await asyncio.sleep(self.config.retry_backoff_s)

    def _kafka_away(self, why: str) -> None:
        """One warning per outage, whatever noticed it first (a failed send or a stall); retries are quiet."""
        self._close_gate()
        if self._away_since is not None:
            return
        self._away_since = time.monotonic()
        log.warning(
            "Driftloop SDK: Kafka at %s %s; buffering events to %s and retrying",
            self.config.bootstrap,
            why,
            self.config.spool_dir,
        )

    def _kafka_back(self) -> None:
        """A chunk was acknowledged: one line if an outage was reported, and the client may speak again."""
        self.failed_attempts = 0
        self._open_gate()
        if self._away_since is None:
            return
        log.info(
            "Driftloop SDK: Kafka at %s reachable again after %.1f s; buffer replayed "
            "(%d Kafka client log lines held back meanwhile)",
            self.config.bootstrap,
            time.monotonic() - self._away_since,
            self._held_back,
        )
        self._away_since, self._held_back = None, 0

    def _close_gate(self) -> None:
        if self._gate is not None:
            self._gate.close()

    def _open_gate(self) -> None:
        if self._gate is not None:
            held = self._gate.open()  # outside an outage: a stray complaint that was shown, and no repeats
            if self._away_since is not None:
                self._held_back += held

    async def _spill_while_stalled(self) -> None:
        """Keep memory small while Kafka does not acknowledge, so the app never has to wait."""
        threshold = max(1, int(self.buffer.max_memory_events * 0.8))
        while True:
            await asyncio.sleep(0.05)
            stalled = (
                self._stalled_since is not None
                and time.monotonic() - self._stalled_since > self.config.spill_after_s
            )
            if self.buffer.memory_size and (stalled or self.buffer.memory_size >= threshold):
                self.buffer.spill()
            self._report_stall(stalled)

    def _report_stall(self, stalled: bool) -> None:
        """aiokafka retries a sent batch until the broker is back: an outage too, reported the same once."""
        if stalled and not self.stalled:
            self.stalled = True
            self._kafka_away(f"has not acknowledged for {self.config.spill_after_s:.1f} s")
        elif self.stalled and self._stalled_since is None:
            self.stalled = False

    def request_stop(self) -> None:
        """Finish what is buffered, then return from :meth:`run` (or return at the next failure)."""
        self._stopping = True

    async def shutdown(self) -> None:
        """Stop the producer; unacknowledged in-flight events go back to the front of the disk buffer."""
        await self._drop_producer()
        if self._in_flight:
            if self._position is not None:
                self.buffer.release(self._position, self._chunk_size)
            self.buffer.give_back(self._in_flight)
        self._in_flight = []
        self.buffer.spill()


def check_compression(codec: str | None) -> None:
    """Fail at start-up, not in the background, when the compression library is missing."""
    if codec is None:
        return
    from aiokafka import codec as codecs

    has = getattr(codecs, f"has_{codec}", None)
    if has is None or not has():
        raise ValueError(f"compression {codec!r} is not available; install cramjam or pick gzip or None")


async def _stop_quietly(producer: AIOKafkaProducer, timeout: float) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout)
    except (KafkaError, OSError, TimeoutError, asyncio.CancelledError):
        log.debug("producer did not stop cleanly", exc_info=True)
