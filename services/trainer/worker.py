"""The trainer worker: consumes ``drift-events`` and ``training-runs``, debounces, runs, announces.

Triggers are keyed by model name and both topics are assigned by range, so in a consumer group each
model's triggers reach one replica: two replicas never train the same model at once (as long as both
topics have the same number of partitions, which ``driftloop infra up`` gives them). Offsets are committed only after the runs a batch started
have ended (finished, rejected or failed), so a crash mid-run means the trigger is read again and the
run retried; nothing is promoted by a run that did not reach its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.trainer.config import TrainerConfig
from services.trainer.debounce import Debouncer, Trigger
from services.trainer.pipeline import RunPorts
from services.trainer.recipe import preload_estimator_modules
from services.trainer.registry_client import RegistryClient
from services.trainer.runner import execute
from services.trainer.triggers import trigger_of
from services.trainer.warehouse import Warehouse
from shared.artifacts import artifact_store
from shared.codec import decode_any, encode
from shared.events import Event
from shared.settings import Settings
from shared.topics import topic_names

log = logging.getLogger(__name__)


def decode_triggers(payloads: list[bytes]) -> list[Trigger]:
    """The triggers among ``payloads``; undecodable ones are logged with their reason (the producer's bug)."""
    found: list[Trigger] = []
    for payload in payloads:
        try:
            event = decode_any(payload)
        except ValidationError as exc:
            log.warning("ignoring an undecodable message on a trainer topic: %s", exc.errors()[:1])
            continue
        trigger = trigger_of(event)
        if trigger is not None:
            found.append(trigger)
    return found


class TrainerWorker:
    """Wires the Kafka loop to the runner; one training at a time in one worker thread."""

    def __init__(self, settings: Settings, config: TrainerConfig) -> None:
        self.settings = settings
        self.config = config
        self.topics = topic_names(settings.topic_prefix)
        self.debouncer = Debouncer()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainer")
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warehouse: Warehouse | None = None
        self._registry: RegistryClient | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._in_thread(self._open_adapters)
        consumer = AIOKafkaConsumer(
            self.topics.drift_events,
            self.topics.training_runs,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.topic_prefix}{self.config.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            max_poll_interval_ms=6 * 3600 * 1000,  # a long training run must not cost us our partitions
            # partition p of both topics to the same replica: a model's drift events and retrain commands
            # share a key, hence a partition number, so one replica owns all of a model's triggers
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await self._producer.start()
        await consumer.start()
        log.info("trainer consuming %s and %s", self.topics.drift_events, self.topics.training_runs)
        try:
            while True:
                await self._step(consumer)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()
            await self._in_thread(self._close_adapters)
            self._executor.shutdown(wait=False)

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        triggers = await self._read(consumer, timeout_ms=1000)
        if not triggers:
            return
        await asyncio.sleep(self.config.debounce_seconds)  # let a burst arrive, so it coalesces
        triggers += await self._read(consumer, timeout_ms=0)
        ready = self.debouncer.offer(triggers)
        while ready:
            trigger = ready.pop(0)
            ready += await self._run(trigger)
        try:
            await consumer.commit()
        except (
            KafkaError
        ) as exc:  # partitions moved during the run: the new owner re-reads, its cut-off decides
            log.warning("could not commit trainer offsets (%s); the triggers may be read again", exc)

    async def _read(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> list[Trigger]:
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        return decode_triggers([m.value for messages in batches.values() for m in messages if m.value])

    async def _run(self, trigger: Trigger) -> list[Trigger]:
        cutoff = datetime.now(UTC)
        self.debouncer.started(trigger.model_name, cutoff)
        log.info("training %s (%s, trigger %s)", trigger.model_name, trigger.reason, trigger.event_id)
        result, _ = await self._in_thread(self._execute, trigger, cutoff)
        succeeded = result.event_type != "training_run_failed"
        return self.debouncer.finished(trigger.model_name, succeeded=succeeded)

    def _execute(self, trigger: Trigger, cutoff: datetime) -> tuple[Event, Any]:
        assert self._warehouse is not None and self._registry is not None
        ports = RunPorts(
            registry=self._registry,
            fetch_window=self._warehouse.fetch_window,
            store=artifact_store(self.settings),
            now=lambda: cutoff,
        )
        return execute(trigger, ports, self._publish_from_thread, self._warehouse.record_run)

    def _publish_from_thread(self, event: Event) -> None:
        """Send and wait for the broker's acknowledgement before the run goes on."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._publish(event), self._loop).result()

    async def _publish(self, event: Event) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(self.topics.training_runs, encode(event), key=event.key)

    def _open_adapters(self) -> None:
        preload_estimator_modules()  # before consuming: the first trigger should not wait for imports
        self._warehouse = Warehouse(self.settings)
        self._warehouse.ensure_schema()
        self._registry = RegistryClient.from_settings(self.settings)

    def _close_adapters(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
        if self._registry is not None:
            self._registry.close()

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
