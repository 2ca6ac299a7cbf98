"""The trainer's Kafka loop: consumes ``drift-events`` and ``training-runs``, debounces, runs, announces.

Triggers are keyed by model name and both topics are assigned by range, so in a consumer group each
model's triggers reach one replica: two replicas never train the same model at once (as long as both
topics have the same number of partitions, which ``driftloop infra up`` gives them). Offsets are committed
only after the runs a batch started have ended (finished, rejected or failed) and every record that is not
a trigger was kept on ``dead-letter`` (acknowledged by the broker), so a crash mid-run means the trigger is
read again and the run retried; nothing is promoted by a run that did not reach its end, nothing dropped.

A dependency that is away (Kafka, ClickHouse, the registry, the artifact store) is waited for with
backoff, shown on ``/health`` as degraded, and the worker resumes by itself when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.trainer.domain.debounce import Debouncer, Trigger
from services.trainer.domain.recipe import preload_estimator_modules
from services.trainer.domain.triggers import TriggerLimits, sort_records
from services.trainer.entrypoints.http import TrainerMetrics
from services.trainer.service import Trainer
from shared.codec import encode
from shared.dependencies import Dependencies
from shared.events import Event, EventDeadLettered
from shared.topics import topic_names

log = logging.getLogger(__name__)
T = TypeVar("T")


BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
IDLE_CHECK_S = 10.0
RETRIES_AFTER_OUTAGE = 3
"""A run that failed while a dependency was away is run again when it is back, this many times at most."""


@dataclass(frozen=True)
class TrainerConfig:
    """``topic_prefix``: the stack's topic prefix; ``debounce_seconds``: how long a trigger waits for others
    to coalesce with."""

    topic_prefix: str = ""
    debounce_seconds: float = 2.0


class TrainerWorker:
    """Wires the Kafka loop to the runner; one training at a time in one worker thread."""

    def __init__(
        self,
        trainer: Trainer,
        config: TrainerConfig,
        *,
        producer: Callable[[], AIOKafkaProducer],
        consumer: Callable[[], AIOKafkaConsumer],
        metrics: TrainerMetrics | None = None,
        dependencies: Dependencies | None = None,
    ) -> None:
        self.trainer = trainer
        self.config = config
        self._new_producer = producer
        self._new_consumer = consumer
        self.topics = topic_names(config.topic_prefix)
        self.limits = TriggerLimits()
        self.metrics = metrics or TrainerMetrics()
        self.dependencies = dependencies or Dependencies(
            running=False, on_change=self.metrics.dependencies_away.set
        )
        self.debouncer = Debouncer()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainer")
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retries: dict[UUID, int] = {}
        self._last_check = 0.0

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._in_thread(preload_estimator_modules)  # the first trigger should not wait for imports
        consumer: AIOKafkaConsumer | None = None
        try:
            await self._until_available("clickhouse", lambda: self._in_thread(self.trainer.open))
            self._producer = await self._until_available("kafka", self._start_producer)
            consumer = await self._until_available("kafka", self._start_consumer)
            self.dependencies.running = True
            log.info("trainer consuming %s and %s", self.topics.drift_events, self.topics.training_runs)
            while True:
                await self._step(consumer)
        finally:
            self.dependencies.running = False
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
            await self._in_thread(self._close_adapters)
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ dependencies

    async def _until_available(self, name: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until it succeeds, waiting longer each time; the outage is on ``/health`` meanwhile."""
        delay = BACKOFF_MIN_S
        while True:
            try:
                result = await attempt()
            except Exception as exc:  # the dependency is away or refusing: wait, whatever the error
                self.dependencies.away(name, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            else:
                self.dependencies.back(name)
                return result

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = self._new_consumer()
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        return consumer

    async def _wait_for_dependencies(self) -> None:
        """Before a run: every dependency it needs is there, or we wait for it (rather than fail the run)."""
        for name, probe in self.trainer.probes().items():
            await self._until_available(name, functools.partial(self._in_thread, probe))

    async def _unavailable(self) -> list[str]:
        """The dependencies of a run that are away now (checked once each, no waiting)."""
        away = []
        for name, probe in self.trainer.probes().items():
            try:
                await self._in_thread(probe)
            except Exception as exc:  # away: reported, waited for by the caller
                self.dependencies.away(name, f"{type(exc).__name__}: {exc}")
                away.append(name)
        return away

    # ------------------------------------------------------------------ the loop

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        triggers, read = await self._read(consumer, timeout_ms=1000)
        if not triggers:
            if read:  # dead letters acknowledged, known events skipped: nothing waits on these offsets
                await self._commit(consumer)
            else:
                await self._check_kafka_when_idle()
            return
        await asyncio.sleep(self.config.debounce_seconds)  # let a burst arrive, so it coalesces
        triggers += (await self._read(consumer, timeout_ms=0))[0]
        ready = self.debouncer.offer(triggers)
        while ready:
            trigger = ready.pop(0)
            ready += await self._run(trigger)
        await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.commit()
        except (
            KafkaError
        ) as exc:  # partitions moved during the run: the new owner re-reads, its cut-off decides
            log.warning("could not commit trainer offsets (%s); the triggers may be read again", exc)

    async def _check_kafka_when_idle(self) -> None:
        """Every ``IDLE_CHECK_S`` without records, ask the broker for metadata: an outage while nothing
        arrives still shows on ``/health`` (the consumer itself would wait silently)."""
        now = asyncio.get_running_loop().time()
        if now - self._last_check < IDLE_CHECK_S or self._producer is None:
            return
        self._last_check = now
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=5.0)
        except Exception as exc:  # away, or not answering: reported, the loop goes on waiting
            self.dependencies.away("kafka", f"{type(exc).__name__}: {exc or 'no answer in 5 s'}")
        else:
            self.dependencies.back("kafka")

    async def _read(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> tuple[list[Trigger], int]:
        """The triggers of one poll and how many records it read; every record that is neither a trigger
        nor a known event of its topic is on dead-letter, acknowledged, when this returns."""
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        records = [m for messages in batches.values() for m in messages]
        found, letters = sort_records(records, self.config.topic_prefix, datetime.now(UTC), self.limits)
        if letters:
            await self._until_available("kafka", functools.partial(self._send_dead_letters, letters))
        for letter in letters:
            topic = letter.source.removeprefix("topic:")
            self.metrics.dead_letters.labels(topic, letter.reason).inc()
            log.warning(
                "dead-lettered a record of %s [%s@%s]: %s (%s)",
                topic,
                letter.source_partition,
                letter.source_offset,
                letter.reason,
                letter.detail[:300],
            )
        for topic, trigger in found:
            self.metrics.triggers.labels(topic, trigger.reason).inc()
        return [trigger for _, trigger in found], len(records)

    async def _send_dead_letters(self, letters: list[EventDeadLettered]) -> None:
        """All of them in flight at once, then every acknowledgement (a retry may send some twice:
        at least once, the dead-letter sink deduplicates by ``event_id``)."""
        assert self._producer is not None
        topic = self.topics.dead_letter
        sent = [await self._producer.send(topic, encode(letter), key=letter.key) for letter in letters]
        await asyncio.gather(*sent)

    async def _run(self, trigger: Trigger) -> list[Trigger]:
        await self._wait_for_dependencies()
        cutoff = datetime.now(UTC)
        self.debouncer.started(trigger.model_name, cutoff)
        log.info("training %s (%s, trigger %s)", trigger.model_name, trigger.reason, trigger.event_id)
        result, _ = await self._in_thread(self._execute, trigger, cutoff)
        outcome = result.event_type.removeprefix("training_run_")
        self.metrics.runs.labels(outcome).inc()
        follow_ups = self.debouncer.finished(trigger.model_name, succeeded=outcome != "failed")
        retried = self._retries.pop(trigger.event_id, 0)
        if outcome != "failed" or retried >= RETRIES_AFTER_OUTAGE:
            return follow_ups
        if any(t.model_name == trigger.model_name for t in follow_ups) or not await self._unavailable():
            return follow_ups  # a newer trigger of the model runs anyway, or the failure was the run's own
        # a dependency went away during the run: the trigger is not lost, it runs again once that is back
        log.info(
            "%s's run failed while a dependency was away; it runs again when it is back", trigger.model_name
        )
        self._retries[trigger.event_id] = retried + 1
        return [trigger, *follow_ups]

    def _execute(self, trigger: Trigger, cutoff: datetime) -> tuple[Event, Any]:
        return self.trainer.run(trigger, cutoff, self._publish_from_thread)

    def _publish_from_thread(self, event: Event) -> None:
        """Send and wait for the broker's acknowledgement before the run goes on (waiting out an outage)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(
            self._until_available("kafka", lambda: self._publish(event)), self._loop
        ).result()

    async def _publish(self, event: Event) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(self.topics.training_runs, encode(event), key=event.key)

    def _close_adapters(self) -> None:
        self.trainer.close()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
