"""The outbox relay: publishes committed registry events to Kafka ``model-events``, in order, at least once.

Only the replica holding the ``outbox`` lease relays, so several registry replicas never interleave one
model's events. Rows are marked published only after Kafka acknowledged them: a crash in between publishes
them again (at least once; consumers dedupe on ``event_id``).

One bad row never stops the relay: a row that is not a valid event, or that Kafka refuses for what it is
(too large), counts a failed attempt with its reason (``attempts``, ``last_error``); after
``OUTBOX_MAX_ATTEMPTS`` it is set aside (``failed_at``) and logged, and the model's later rows go out.
Until then only that model's later rows wait, so its order holds; other models are not held up. Kafka
being away is not the rows' fault: nothing is counted, the relay waits and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy import Engine

from services.registry.adapters.outbox import (
    acquire_lease,
    mark_published,
    pending_messages,
    record_failures,
    release_lease,
)
from services.registry.domain.outbox import OUTBOX_MAX_ATTEMPTS, OutboxMessage, Publish, malformed, sendable
from shared.dependencies import Dependencies

log = logging.getLogger(__name__)


class OutboxRelay:
    """Moves outbox rows to Kafka; ``run`` loops until stopped, ``relay_once`` does one batch (tests)."""

    def __init__(
        self,
        engine: Engine,
        publish: Publish,
        *,
        batch_size: int = 500,
        lease_seconds: float = 10.0,
        max_attempts: int = OUTBOX_MAX_ATTEMPTS,
        dependencies: Dependencies | None = None,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.dependencies = dependencies or Dependencies()
        self.holder = uuid.uuid4().hex
        self.published = 0
        self.failed = 0

    async def relay_once(self) -> int:
        """Publish one batch if this replica holds the lease; returns how many rows it settled."""
        leader = await asyncio.to_thread(
            acquire_lease, self.engine, "outbox", self.holder, self.lease_seconds
        )
        if not leader:
            return 0
        messages = await asyncio.to_thread(pending_messages, self.engine, self.batch_size)
        if not messages:
            return 0
        refused = {m.id: reason for m in messages if (reason := malformed(m)) is not None}
        result = await self.publish(sendable(messages, refused))
        refused.update(result.rejected)
        if result.sent:
            await asyncio.to_thread(mark_published, self.engine, result.sent)
        failed: list[OutboxMessage] = []
        if refused:
            failed = await asyncio.to_thread(
                record_failures, self.engine, messages, refused, self.max_attempts
            )
        for message in failed:
            log.error(
                "outbox row %d (%s of %s) failed %d times and is set aside, not announced: %s",
                message.id,
                message.event_type,
                message.model_name,
                self.max_attempts,
                refused[message.id],
            )
        self.published += len(result.sent)
        self.failed += len(failed)
        return len(result.sent) + len(failed)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        delay = interval
        try:
            while not stop.is_set():
                try:
                    sent = await self.relay_once()
                except Exception as exc:  # the broker or database is away: keep the rows, try again
                    self.dependencies.away("outbox relay", f"{type(exc).__name__}: {exc}")
                    sent, delay = 0, min(max(delay * 2, interval), 30.0)
                else:
                    self.dependencies.back("outbox relay")
                    delay = interval
                if sent < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            with contextlib.suppress(Exception):  # the database may be the thing that is away
                await asyncio.to_thread(release_lease, self.engine, "outbox", self.holder)
