"""Webhook deliveries: POST each queued event to its webhook, signed with HMAC-SHA256, retried with backoff.

Deliveries are queued by the store in the same transaction as the change (like the outbox). Receivers
check ``X-Driftloop-Signature: sha256=<hex>`` (HMAC of the raw body with the webhook's secret) and dedupe on
``X-Driftloop-Delivery``/the event's ``event_id``: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine, select, update

from services.registry.db import writing
from services.registry.domain import webhook_backoff_seconds, webhook_signature
from services.registry.relay import acquire_lease, release_lease
from services.registry.tables import webhook_deliveries, webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueDelivery:
    id: int
    url: str
    secret: str
    event_id: str
    event_type: str
    payload: bytes
    attempts: int


def due_deliveries(engine: Engine, limit: int) -> list[DueDelivery]:
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                webhook_deliveries.c.id,
                webhooks.c.url,
                webhooks.c.secret,
                webhook_deliveries.c.event_id,
                webhook_deliveries.c.event_type,
                webhook_deliveries.c.payload,
                webhook_deliveries.c.attempts,
            )
            .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            .where(webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now)
            .order_by(webhook_deliveries.c.id)
            .limit(limit)
        ).all()
    return [
        DueDelivery(r.id, r.url, r.secret, r.event_id, r.event_type, r.payload.encode(), r.attempts)
        for r in rows
    ]


def record_attempt(engine: Engine, delivery: DueDelivery, error: str | None, max_attempts: int) -> None:
    attempts = delivery.attempts + 1
    now = datetime.now(UTC)
    if error is None:
        values: dict[str, object] = {
            "status": "delivered",
            "attempts": attempts,
            "delivered_at": now,
            "last_error": "",
        }
    else:
        values = {
            "status": "failed" if attempts >= max_attempts else "pending",
            "attempts": attempts,
            "last_error": error[:2000],
            "next_attempt_at": now + timedelta(seconds=webhook_backoff_seconds(attempts)),
        }
    with writing(engine) as conn:
        conn.execute(
            update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values)
        )


class WebhookSender:
    """Sends due deliveries; one replica at a time (lease ``webhooks``)."""

    def __init__(self, engine: Engine, *, max_attempts: int, timeout: float = 10.0) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.holder = uuid.uuid4().hex

    async def _send(self, client: httpx.AsyncClient, delivery: DueDelivery) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "X-Driftloop-Event": delivery.event_type,
            "X-Driftloop-Delivery": str(delivery.id),
            "X-Driftloop-Event-Id": delivery.event_id,
            "X-Driftloop-Signature": webhook_signature(delivery.secret, delivery.payload),
        }
        try:
            response = await client.post(delivery.url, content=delivery.payload, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    async def send_once(self, client: httpx.AsyncClient) -> int:
        leader = await asyncio.to_thread(acquire_lease, self.engine, "webhooks", self.holder, 30.0)
        if not leader:
            return 0
        due = await asyncio.to_thread(due_deliveries, self.engine, 50)
        for delivery in due:
            error = await self._send(client, delivery)
            await asyncio.to_thread(record_attempt, self.engine, delivery, error, self.max_attempts)
        return len(due)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                while not stop.is_set():
                    try:
                        await self.send_once(client)
                    except Exception:
                        log.exception("webhook delivery failed; retrying in %.1fs", interval)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=interval)
            finally:
                await asyncio.to_thread(release_lease, self.engine, "webhooks", self.holder)
