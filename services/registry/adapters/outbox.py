"""The outbox and relay leases in SQL: pending rows, marking them published or failed, one holder per lease."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, or_, select, update

from services.registry.adapters.db import writing
from services.registry.adapters.tables import outbox, relay_leases
from services.registry.domain.outbox import OutboxMessage


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
