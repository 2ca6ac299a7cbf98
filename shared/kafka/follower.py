"""Follows topics from a thread of its own, without a consumer group: every follower sees every record.

A model server's alias watcher and the demo's observer use it. It starts at the ``earliest`` or ``latest``
offsets, pins those positions before it sets ``positioned`` and, after a reconnect, resumes where it was.
While Kafka is away it retries with backoff and logs one line when Kafka goes away and one when it is
back; the client's own repeated complaints on its thread are held back (:mod:`shared.kafka.logs`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from shared.kafka.clients import Endpoint, connection
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.logs import ClientLogGate, gate_this_thread, release

log = logging.getLogger(__name__)

# What a broker that is away raises: connection refused, timeouts, aiokafka's own errors.
BROKER_ERRORS = (KafkaError, OSError, TimeoutError)
T = TypeVar("T")

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
BatchHandler = Callable[[Batch], Awaitable[object]]
Hook = Callable[[], Coroutine[Any, Any, object]]
Start = Literal["earliest", "latest"]


@dataclass(frozen=True)
class FollowerStatus:
    connected: bool
    since: datetime  # when the follower last became connected or disconnected
    last_error: str | None  # the last Kafka error, kept after reconnecting


def error_text(exc: BaseException) -> str:
    """An error as one line that names its type once.

    >>> error_text(OSError("connection refused"))
    'OSError: connection refused'
    >>> error_text(KafkaError("no brokers"))
    'KafkaError: no brokers'
    """
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}"


def next_positions(batch: Batch) -> dict[TopicPartition, int]:
    """Where to resume each partition of ``batch``: one past its last record.

    >>> tp = TopicPartition("t", 0)
    >>> record = ConsumerRecord("t", 0, 41, 0, 0, None, b"v", None, 0, 1, [])
    >>> next_positions({tp: [record]})
    {TopicPartition(topic='t', partition=0): 42}
    """
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


class Reachability:
    """Whether Kafka answers, as a follower reports it: once when it goes away, once when it is back.

    >>> state = Reachability(retry_s=1.0, max_retry_s=4.0, now=lambda: 100.0)
    >>> state.lost(OSError("refused")), state.lost(OSError("refused again")), state.backoff()
    (True, False, 1.0)
    >>> state.backoff(), state.backoff(), state.connected
    (2.0, 4.0, False)
    >>> state.reached(), state.reached(), state.backoff(), state.last_error
    (0.0, None, 1.0, 'OSError: refused again')
    """

    def __init__(self, retry_s: float, max_retry_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.connected = False
        self.since = datetime.now(UTC)
        self.last_error: str | None = None
        self._away_since: float | None = None  # monotonic, set on the first failure of an outage
        self._next_wait = retry_s
        self._now = now

    def reached(self) -> float | None:
        """Kafka answered: the outage's length in seconds when this ends one (log it), else None."""
        self._next_wait = self.retry_s
        if self.connected:
            return None
        self.connected, self.since = True, datetime.now(UTC)
        if self._away_since is None:
            return None
        away, self._away_since = self._now() - self._away_since, None
        return away

    def lost(self, exc: BaseException) -> bool:
        """Kafka failed us: True on the first failure of an outage (log it), False while it lasts."""
        self.last_error = error_text(exc)
        if self._away_since is not None:
            return False
        self.connected, self.since, self._away_since = False, datetime.now(UTC), self._now()
        return True

    def backoff(self) -> float:
        """Seconds to wait before the next attempt; doubles up to ``max_retry_s`` until Kafka answers."""
        wait, self._next_wait = self._next_wait, min(self._next_wait * 2, self.max_retry_s)
        return wait


class TopicFollower:
    """Reads ``topics`` in its own thread and event loop; the callbacks run in that loop, one at a time.

    ``on_batch`` gets each non-empty batch of records; ``on_connect`` runs once positioned after every
    (re)start of the consumer and when a probe finds Kafka back; each of ``beside`` runs as a task in the
    loop for the follower's life (use :meth:`sleep` in it to stop promptly). ``while_away`` ends the line
    logged when Kafka goes away.
    """

    def __init__(
        self,
        kafka: Endpoint,
        topics: Sequence[str],
        *,
        start: Start = "latest",
        on_batch: BatchHandler | None = None,
        on_connect: Hook | None = None,
        beside: Sequence[Hook] = (),
        name: str = "topic follower",
        while_away: str = "reconnecting with backoff",
        thread_name: str | None = None,
        retry_s: float = 1.0,
        max_retry_s: float = 10.0,
        probe_s: float = 5.0,
        poll_ms: int = 100,
        **consumer_options: Any,
    ) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.topics = tuple(topics)
        self.start_at = start
        self.on_batch = on_batch
        self.on_connect = on_connect
        self.beside = tuple(beside)
        self.name = name
        self.while_away = while_away
        self.probe_s = probe_s
        self.poll_ms = poll_ms
        self.consumer_options = consumer_options
        self.positioned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name or name, daemon=True)
        self._state = Reachability(retry_s, max_retry_s)
        self._positions: dict[TopicPartition, int] = {}
        self._gate: ClientLogGate | None = None

    @property
    def status(self) -> FollowerStatus:
        return FollowerStatus(self._state.connected, self._state.since, self._state.last_error)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` in the follower's loop, or less when it is stopped."""
        await asyncio.to_thread(self._stop.wait, seconds)

    def _run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        self._gate = gate_this_thread()
        tasks = [asyncio.create_task(hook()) for hook in self.beside]
        try:
            while not self._stop.is_set():
                try:
                    await self._consume()
                except BROKER_ERRORS as exc:
                    self._disconnected(exc)
                except Exception as exc:  # a bug of ours: show it whole, then keep following
                    log.exception("%s failed; reconnecting", self.name)
                    self._disconnected(exc)
                await self.sleep(self._state.backoff())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            release(self._gate)

    async def _consume(self) -> None:
        if not self._state.connected and self._gate is not None:
            self._gate.close()  # the outcome of this attempt is ours to report, not the client's
        consumer = kafka_consumer(
            self.kafka,
            *self.topics,
            group_id=None,  # no group: every follower gets every partition
            auto_offset_reset=self.start_at,
            **self.consumer_options,
        )
        try:
            await consumer.start()
            self._reachable()
            early: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
            last_probe = time.monotonic()
            while not consumer.assignment() and not self._stop.is_set():
                for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                    early.setdefault(tp, []).extend(records)
                if time.monotonic() - last_probe >= self.probe_s:  # a broker gone now never assigns
                    last_probe = time.monotonic()
                    await still_answering(consumer, self.probe_s)
            for tp in consumer.assignment():
                if tp in self._positions:  # followed before this reconnect: resume where we were
                    early.pop(tp, None)
                    consumer.seek(tp, self._positions[tp])
                else:  # pins "latest" now, for on_connect
                    self._positions[tp] = await while_answering(consumer, consumer.position(tp), self.probe_s)
            self.positioned.set()
            if self.on_connect is not None:
                await self.on_connect()
            if early:
                await self._deliver(early)
            last_probe = time.monotonic()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=self.poll_ms)
                if batch:
                    self._reachable()
                    await self._deliver(batch)
                if time.monotonic() - last_probe >= self.probe_s:
                    last_probe = time.monotonic()
                    await self._probe(consumer)
        finally:
            await _close(consumer)  # also after a failed start, or the client is left unclosed

    async def _deliver(self, batch: Batch) -> None:
        self._positions.update(next_positions(batch))
        if self.on_batch is not None:
            await self.on_batch(batch)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """A fetch that finds no broker just waits, so ask for metadata to learn whether Kafka answers."""
        was_connected = self._state.connected
        try:
            await still_answering(consumer, self.probe_s)
        except BROKER_ERRORS as exc:
            self._disconnected(exc)
            return
        self._reachable()
        if not was_connected and self.on_connect is not None:
            await self.on_connect()

    def _reachable(self) -> None:
        held = self._gate.open() if self._gate is not None else 0
        away = self._state.reached()
        if away is not None:
            log.info(
                "%s: Kafka at %s reachable again after %.1f s (%d client log lines held back)",
                self.name,
                self.bootstrap,
                away,
                held,
            )

    def _disconnected(self, exc: BaseException) -> None:
        if self._gate is not None:
            self._gate.close()
        if not self._state.lost(exc):
            log.debug("%s: Kafka still away: %s", self.name, self._state.last_error)
            return
        log.warning(
            "%s: Kafka at %s unreachable (%s); %s",
            self.name,
            self.bootstrap,
            self._state.last_error,
            self.while_away,
        )


async def still_answering(consumer: AIOKafkaConsumer, probe_s: float) -> None:
    """Raise a broker error unless Kafka answers a metadata request within ``max(probe_s, 5)`` seconds."""
    await asyncio.wait_for(consumer.topics(), timeout=max(probe_s, 5.0))


async def while_answering(consumer: AIOKafkaConsumer, step: Awaitable[T], probe_s: float) -> T:
    """Await ``step``, checking every ``probe_s`` that Kafka still answers; raise the broker error if not.

    aiokafka's ``position()`` waits without end for an offset that a broker gone meanwhile never sends (a
    broker stopped just after it assigned the partitions): without the check, the follower hung there,
    reporting "connected" for ever.
    """
    task = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=probe_s)
            if done:
                return task.result()
            await still_answering(consumer, probe_s)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _close(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer whatever state the broker left it in; only our own cancellation goes on up."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        # stopping during an outage re-raises the CancelledError of aiokafka's own cancelled fetch task
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except BROKER_ERRORS as exc:
        log.debug("a follower's consumer did not stop cleanly: %r", exc)
