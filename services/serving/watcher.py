"""Listens to model-events and calls back when the served alias may have moved, so swaps are immediate.

Every server replica reads every partition (no consumer group) from the end: each must see each move. A
periodic refresh backs it up, so a message missed while the broker was away is caught within ``poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from shared.codec import decode_any
from shared.events import AliasChanged, Event, ModelDeleted, ModelVersionStatusChanged

log = logging.getLogger(__name__)


def concerns(event: Event, model_name: str, alias: str) -> bool:
    """Does ``event`` possibly change what ``model_name@alias`` should serve?"""
    if event.model_name != model_name:
        return False
    if isinstance(event, AliasChanged):
        return event.alias == alias
    return isinstance(event, ModelVersionStatusChanged | ModelDeleted)


class ModelEventsWatcher:
    """Runs in its own thread with its own event loop; ``on_change`` runs in that thread."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        model_name: str,
        alias: str,
        on_change: Callable[[], object],
        *,
        poll_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.model_name = model_name
        self.alias = alias
        self.on_change = on_change
        self.poll_s = poll_s
        self.positioned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"model-events-{model_name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                await self._consume()
            except Exception:
                log.exception("model-events watcher failed; reconnecting")
                await asyncio.to_thread(self._stop.wait, 1.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,  # no group: every replica gets every partition
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            while not consumer.assignment() and not self._stop.is_set():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():
                await consumer.position(tp)  # resolves "latest" now, before we read the alias
            self.positioned.set()
            await asyncio.to_thread(self.on_change)  # catch a move made before we were positioned
            last_check = time.monotonic()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                relevant = False
                for records in batch.values():
                    for record in records:
                        with contextlib.suppress(ValidationError, ValueError):
                            relevant |= concerns(decode_any(record.value or b""), self.model_name, self.alias)
                if relevant or time.monotonic() - last_check >= self.poll_s:
                    last_check = time.monotonic()
                    await asyncio.to_thread(self.on_change)
        finally:
            await consumer.stop()
