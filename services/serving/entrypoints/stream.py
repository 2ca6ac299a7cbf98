"""Listens to model-events and calls back when the served alias may have moved, so swaps are immediate.

Every server replica reads every partition (a :class:`shared.kafka.follower.TopicFollower`, no consumer
group) from the end: each must see each move. A periodic alias check runs beside it, whether Kafka is
reachable or not, so a move made while the broker is away (or a message missed then) is caught within
``poll_s``. While Kafka is away the follower retries with backoff and logs one line when it goes away and
one when it is back, not one per retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.serving.domain.events import concerns, read_event
from services.serving.service import WatcherStatus
from shared.kafka.clients import Endpoint
from shared.kafka.follower import Batch, TopicFollower

log = logging.getLogger(__name__)


class ModelEventsWatcher:
    """Runs in the follower's own thread and event loop; ``on_change`` runs in a worker thread of that loop."""

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
        self.topic = topic
        self.model_name = model_name
        self.alias = alias
        self.on_change = on_change
        self.poll_s = poll_s
        self._skipped = 0
        self.follower = TopicFollower(
            kafka,
            [topic],
            start="latest",
            on_batch=self._on_batch,
            on_connect=self._check,  # catch a move made before we were positioned, or while Kafka was away
            beside=[self._check_periodically],
            name="model-events watcher",
            while_away=f"{model_name}@{alias} keeps checking its alias every {poll_s:.0f} s "
            "and reconnects with backoff",
            thread_name=f"model-events-{model_name}",
            retry_s=retry_s,
            max_retry_s=max_retry_s,
            probe_s=probe_s,
        )
        self.bootstrap = self.follower.bootstrap
        self.positioned = self.follower.positioned

    @property
    def status(self) -> WatcherStatus:
        followed = self.follower.status
        return WatcherStatus(followed.connected, followed.since, followed.last_error, self._skipped)

    def start(self) -> None:
        self.follower.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.follower.stop(timeout)

    async def _check_periodically(self) -> None:
        """The alias check every ``poll_s``, independent of Kafka: the registry is enough to swap."""
        while not self.follower.stopping:
            await self.follower.sleep(self.poll_s)
            if not self.follower.stopping:
                await self._check()

    async def _check(self) -> None:
        try:
            await asyncio.to_thread(self.on_change)
        except (
            Exception
        ):  # on_change keeps its own errors; one escaping is a bug, but must not stop the checks
            log.exception("alias check of %s@%s failed", self.model_name, self.alias)

    async def _on_batch(self, batch: Batch) -> None:
        if self._relevant(batch):
            await self._check()

    def _relevant(self, batch: Batch) -> bool:
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
