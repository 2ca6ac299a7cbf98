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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from pydantic import ValidationError
from sqlalchemy import Engine, or_, select, update

from services.registry.db import writing
from services.registry.tables import outbox, relay_leases
from shared.codec import decode_any
from shared.dependencies import Dependencies
from shared.kafka.clients import Endpoint, connection
from shared.kafka.clients import producer as kafka_producer

log = logging.getLogger(__name__)

OUTBOX_MAX_ATTEMPTS = 5
"""Failed attempts (the row's own fault) before an outbox row is set aside as failed."""

ROW_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
"""Kafka errors about one record (not the broker being away): they count against the row."""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    model_name: str
    event_type: str
    payload: bytes
    attempts: int = 0


@dataclass
class Published:
    """What one publish did: rows Kafka acknowledged, and rows it refused for what they are (id → reason).
    Rows in neither were not sent (a model's rows after its refused one wait, to keep its order)."""

    sent: list[int]
    rejected: dict[int, str]


Publish = Callable[[Sequence[OutboxMessage]], Awaitable[Published]]


def malformed(message: OutboxMessage) -> str | None:
    """Why a row cannot be announced as it is (not an event of the contract, or keyed by another model)."""
    try:
        event = decode_any(message.payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        text = errors[0]["msg"] if errors else str(exc)
        return f"invalid_event: {where + ': ' if where else ''}{text}"[:2000]
    except (OverflowError, ValueError) as exc:
        return f"invalid_event: {exc}"[:2000]
    if event.model_name != message.model_name:
        return (
            f"model_mismatch: the event is about {event.model_name!r}, the row about {message.model_name!r}"
        )
    return None


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


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode("utf-8", errors="surrogateescape")


def pending_messages(engine: Engine, limit: int) -> list[OutboxMessage]:
    """Rows neither published nor set aside, oldest first; a row with odd contents is still listed."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.id, outbox.c.model_name, outbox.c.event_type, outbox.c.payload, outbox.c.attempts)
            .where(outbox.c.published_at.is_(None), outbox.c.failed_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        ).all()
    return [
        OutboxMessage(
            r.id, str(r.model_name or ""), str(r.event_type or ""), _as_bytes(r.payload), r.attempts or 0
        )
        for r in rows
    ]


def mark_published(engine: Engine, ids: Sequence[int]) -> None:
    with writing(engine) as conn:
        conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(published_at=datetime.now(UTC)))


def record_failures(
    engine: Engine, messages: Sequence[OutboxMessage], reasons: dict[int, str], max_attempts: int
) -> list[OutboxMessage]:
    """Count one failed attempt per row with its reason; returns the rows now set aside as failed."""
    now = datetime.now(UTC)
    failed = []
    with writing(engine) as conn:
        for message in messages:
            if message.id not in reasons:
                continue
            attempts = message.attempts + 1
            values: dict[str, object] = {
                "attempts": attempts,
                "last_error": reasons[message.id].replace("\x00", "\\x00")[:2000],
            }
            if attempts >= max_attempts:
                values["failed_at"] = now
                failed.append(message)
            conn.execute(update(outbox).where(outbox.c.id == message.id).values(**values))
    return failed


def sendable(messages: Sequence[OutboxMessage], refused: dict[int, str]) -> list[OutboxMessage]:
    """The rows to send: not refused themselves, and not after a refused row of the same model (order)."""
    held: set[str] = set()
    out = []
    for message in messages:
        if message.id in refused or message.model_name in held:
            held.add(message.model_name)
            continue
        out.append(message)
    return out


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


class KafkaPublisher:
    """Publishes outbox messages to one topic, keyed by model name, acks=all with idempotence (ordered)."""

    def __init__(self, kafka: Endpoint, topic: str) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = kafka_producer(self.kafka, linger_ms=0)
            await producer.start()
            self._producer = producer
        return self._producer

    async def __call__(self, messages: Sequence[OutboxMessage]) -> Published:
        """Send ``messages``; a record Kafka refuses for its size is reported, not raised, and its model's
        later rows are not sent. Raises when Kafka is away (nothing is counted against the rows)."""
        if not messages:
            return Published([], {})
        producer = await self._started()
        rejected: dict[int, str] = {}
        held: set[str] = set()
        futures = []
        try:
            for m in messages:
                if m.model_name in held:
                    continue
                try:
                    future = await producer.send(self.topic, m.payload, key=m.model_name.encode())
                except ROW_ERRORS as exc:
                    rejected[m.id] = f"{type(exc).__name__}: {exc}"
                    held.add(m.model_name)
                    continue
                futures.append((m, future))
            results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        except Exception:
            await self.close()  # start afresh next time: the producer may be wedged
            raise
        sent = []
        for (m, _), outcome in zip(futures, results, strict=True):
            if isinstance(outcome, ROW_ERRORS):
                rejected[m.id] = f"{type(outcome).__name__}: {outcome}"
            elif isinstance(outcome, BaseException):
                await self.close()
                raise outcome
            else:
                sent.append(m.id)
        return Published(sent, rejected)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
