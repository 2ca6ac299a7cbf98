"""The outbox relay: publishes committed registry events to Kafka ``model-events``, in order, at least once.

Only the replica holding the ``outbox`` lease relays, so several registry replicas never interleave one
model's events. Rows are marked published only after Kafka acknowledged them: a crash in between publishes
them again (at least once; consumers dedupe on ``event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, or_, select, update

from services.registry.db import writing
from services.registry.tables import outbox, relay_leases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    model_name: str
    event_type: str
    payload: bytes


Publish = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


def acquire_lease(engine: Engine, name: str, holder: str, seconds: float) -> bool:
    """Take or renew lease ``name`` for ``holder``; False while another live holder has it."""
    now = datetime.now(UTC)
    with writing(engine) as conn:
        result = conn.execute(
            update(relay_leases)
            .where(
                relay_leases.c.name == name,
                or_(relay_leases.c.holder == holder, relay_leases.c.expires_at < now),
            )
            .values(holder=holder, expires_at=now + timedelta(seconds=seconds))
        )
        return result.rowcount == 1


def release_lease(engine: Engine, name: str, holder: str) -> None:
    with writing(engine) as conn:
        conn.execute(
            update(relay_leases)
            .where(relay_leases.c.name == name, relay_leases.c.holder == holder)
            .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        )


def pending_messages(engine: Engine, limit: int) -> list[OutboxMessage]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.id, outbox.c.model_name, outbox.c.event_type, outbox.c.payload)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        ).all()
    return [OutboxMessage(r.id, r.model_name, r.event_type, r.payload.encode()) for r in rows]


def mark_published(engine: Engine, ids: Sequence[int]) -> None:
    with writing(engine) as conn:
        conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=datetime.now(UTC)))


class OutboxRelay:
    """Moves outbox rows to Kafka; ``run`` loops until stopped, ``relay_once`` does one batch (tests)."""

    def __init__(
        self, engine: Engine, publish: Publish, *, batch_size: int = 500, lease_seconds: float = 10.0
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.holder = uuid.uuid4().hex
        self.published = 0

    async def relay_once(self) -> int:
        """Publish one batch if this replica holds the lease; returns how many were published."""
        leader = await asyncio.to_thread(
            acquire_lease, self.engine, "outbox", self.holder, self.lease_seconds
        )
        if not leader:
            return 0
        messages = await asyncio.to_thread(pending_messages, self.engine, self.batch_size)
        if not messages:
            return 0
        await self.publish(messages)
        await asyncio.to_thread(mark_published, self.engine, [m.id for m in messages])
        self.published += len(messages)
        return len(messages)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        try:
            while not stop.is_set():
                try:
                    sent = await self.relay_once()
                except Exception:  # the broker or database is away: keep the rows, try again
                    log.exception("outbox relay failed; retrying in %.1fs", interval)
                    sent = 0
                if sent < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await asyncio.to_thread(release_lease, self.engine, "outbox", self.holder)


class KafkaPublisher:
    """Publishes outbox messages to one topic, keyed by model name, acks=all with idempotence (ordered)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=0
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def __call__(self, messages: Sequence[OutboxMessage]) -> None:
        producer = await self._started()
        try:
            futures = [
                await producer.send(self.topic, m.payload, key=m.model_name.encode()) for m in messages
            ]
            await asyncio.gather(*futures)
        except Exception:
            await self.close()  # start afresh next time: the producer may be wedged
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
