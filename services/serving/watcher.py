"""Listens to model-events and calls back when the served alias may have moved, so swaps are immediate.

Every server replica reads every partition (no consumer group) from the end: each must see each move. A
periodic alias check runs beside it, whether Kafka is reachable or not, so a move made while the broker is
away (or a message missed then) is caught within ``poll_s``. While Kafka is away the watcher retries with
backoff and logs one line when it goes away and one when it is back, not one per retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from shared.codec import decode_any
from shared.events import AliasChanged, Event, ModelDeleted, ModelVersionStatusChanged
from shared.kafka.clients import Endpoint, connection
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.logs import ClientLogGate, gate_this_thread, release

log = logging.getLogger(__name__)

# What a broker that is away raises: connection refused, timeouts, aiokafka's own errors.
BROKER_ERRORS = (KafkaError, OSError, TimeoutError)


def concerns(event: Event, model_name: str, alias: str) -> bool:
    """Does ``event`` possibly change what ``model_name@alias`` should serve?"""
    if event.model_name != model_name:
        return False
    if isinstance(event, AliasChanged):
        return event.alias == alias
    return isinstance(event, ModelVersionStatusChanged | ModelDeleted)


def read_event(value: bytes | None) -> Event | str:
    """The event in a model-events record, or why it is not one (any bytes, None included, are data)."""
    if not value:
        return "empty record"
    try:
        return decode_any(value)
    except ValidationError as exc:
        return f"not a model event ({exc.error_count()} errors, first: {exc.errors()[0]['msg']})"
    except ValueError as exc:  # e.g. bytes that are not UTF-8
        return f"not a model event ({type(exc).__name__})"


@dataclass(frozen=True)
class WatcherStatus:
    connected: bool
    since: datetime  # when the watcher last became connected or disconnected
    last_error: str | None  # the last Kafka error, kept after reconnecting
    skipped_records: int  # model-events records that were not events


class ModelEventsWatcher:
    """Runs in its own thread with its own event loop; ``on_change`` runs in a worker thread of that loop."""

    def __init__(
        self,
        kafka: Endpoint,
        topic: str,
        model_name: str,
        alias: str,
        on_change: Callable[[], object],
        *,
        poll_s: float = 30.0,
        retry_s: float = 1.0,
        max_retry_s: float = 10.0,
        probe_s: float = 5.0,
    ) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic
        self.model_name = model_name
        self.alias = alias
        self.on_change = on_change
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.probe_s = probe_s
        self.positioned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"model-events-{model_name}", daemon=True)
        self._connected = False
        self._since = datetime.now(UTC)
        self._away_since: float | None = None  # monotonic, set on the first failure of an outage
        self._last_error: str | None = None
        self._skipped = 0
        self._backoff = retry_s
        self._gate: ClientLogGate | None = None

    @property
    def status(self) -> WatcherStatus:
        return WatcherStatus(self._connected, self._since, self._last_error, self._skipped)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        self._gate = gate_this_thread()
        checks = asyncio.create_task(self._check_periodically())
        try:
            while not self._stop.is_set():
                try:
                    await self._consume()
                except BROKER_ERRORS as exc:
                    self._disconnected(exc)
                except Exception as exc:  # a bug of ours: show it whole, then keep following
                    log.exception("model-events watcher failed; reconnecting")
                    self._disconnected(exc)
                await self._sleep(self._backoff)
                self._backoff = min(self._backoff * 2, self.max_retry_s)
        finally:
            checks.cancel()
            await asyncio.gather(checks, return_exceptions=True)
            release(self._gate)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.to_thread(self._stop.wait, seconds)

    async def _check_periodically(self) -> None:
        """The alias check every ``poll_s``, independent of Kafka: the registry is enough to swap."""
        while not self._stop.is_set():
            await self._sleep(self.poll_s)
            if not self._stop.is_set():
                await self._check()

    async def _check(self) -> None:
        try:
            await asyncio.to_thread(self.on_change)
        except (
            Exception
        ):  # on_change keeps its own errors; one escaping is a bug, but must not stop the checks
            log.exception("alias check of %s@%s failed", self.model_name, self.alias)

    async def _consume(self) -> None:
        if not self._connected and self._gate is not None:
            self._gate.close()  # the outcome of this attempt is ours to report, not the client's
        consumer = kafka_consumer(
            self.kafka,
            self.topic,
            group_id=None,  # no group: every replica gets every partition
            auto_offset_reset="latest",
        )
        try:
            await consumer.start()
            self._reachable()
            while not consumer.assignment() and not self._stop.is_set():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():
                await consumer.position(tp)  # resolves "latest" now, before we read the alias
            self.positioned.set()
            await self._check()  # catch a move made before we were positioned
            last_probe = time.monotonic()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                if batch:
                    self._reachable()
                if self._relevant(batch):
                    await self._check()
                if time.monotonic() - last_probe >= self.probe_s:
                    last_probe = time.monotonic()
                    await self._probe(consumer)
        finally:
            await _close(consumer)  # also after a failed start, or the client is left unclosed

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """A fetch that finds no broker just waits, so ask for metadata to learn whether Kafka answers."""
        was_connected = self._connected
        try:
            await asyncio.wait_for(consumer.topics(), timeout=max(self.probe_s, 5.0))
        except BROKER_ERRORS as exc:
            self._disconnected(exc)
            return
        self._reachable()
        if not was_connected:
            await self._check()

    def _relevant(self, batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> bool:
        relevant = False
        for records in batch.values():
            for record in records:
                event = read_event(record.value)
                if isinstance(event, str):
                    self._skipped += 1
                    log.warning(
                        "skipped model-events record at partition %s offset %s: %s (%d skipped so far)",
                        record.partition,
                        record.offset,
                        event,
                        self._skipped,
                    )
                    continue
                relevant |= concerns(event, self.model_name, self.alias)
        return relevant

    def _reachable(self) -> None:
        self._backoff = self.retry_s
        held = self._gate.open() if self._gate is not None else 0
        if self._connected:
            return
        self._connected, self._since = True, datetime.now(UTC)
        if self._away_since is not None:
            log.info(
                "model-events watcher: Kafka at %s reachable again after %.1f s (%d client log lines held back)",
                self.bootstrap,
                time.monotonic() - self._away_since,
                held,
            )
            self._away_since = None

    def _disconnected(self, exc: BaseException) -> None:
        if self._gate is not None:
            self._gate.close()
        name, text = type(exc).__name__, str(exc)
        self._last_error = text if text.startswith(name) else f"{name}: {text}"
        if self._away_since is not None:
            log.debug("model-events watcher: Kafka still away: %s", self._last_error)
            return
        self._connected, self._since, self._away_since = False, datetime.now(UTC), time.monotonic()
        log.warning(
            "model-events watcher: Kafka at %s unreachable (%s); %s@%s keeps checking its alias every %.0f s "
            "and reconnects with backoff",
            self.bootstrap,
            self._last_error,
            self.model_name,
            self.alias,
            self.poll_s,
        )


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
        log.debug("model-events consumer did not stop cleanly: %r", exc)
