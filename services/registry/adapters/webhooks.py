"""Webhook deliveries: POST each queued event to its webhook, signed with HMAC-SHA256, retried with backoff.

Deliveries are queued by the store in the same transaction as the change (like the outbox). Receivers
check ``X-Driftloop-Signature: sha256=<hex>`` (HMAC of the raw body with the webhook's secret) and dedupe on
``X-Driftloop-Delivery``/the event's ``event_id``: delivery is at least once.

No receiver can stop the sender: each attempt has one deadline for connecting, sending and reading (a
target that hangs or trickles bytes costs ``timeout`` seconds, no more), at most ``ANSWER_BYTES`` of the
answer are read, redirects are not followed (a 3xx is a failed attempt: the URL was checked, its redirect
target was not), and deliveries go out concurrently, so a slow target does not hold up the others. Each
attempt resolves the URL's host and checks every address (:mod:`services.registry.adapters.outbound`) before it
connects, to the address it checked: a name that now points inward fails the attempt (DNS rebinding). Whatever goes wrong is that attempt's recorded error; after ``max_attempts``
the delivery is marked failed with its last error.
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

from services.registry.adapters.db import writing
from services.registry.adapters.outbound import OutboundPolicy, OutboundRefused, pinned
from services.registry.adapters.outbox import acquire_lease, release_lease
from services.registry.adapters.tables import webhook_deliveries, webhooks
from services.registry.domain.rules import webhook_backoff_seconds, webhook_signature
from shared.dependencies import Dependencies

log = logging.getLogger(__name__)

ANSWER_BYTES = 2048
"""How much of a receiver's answer is read, for the error message; the rest is never downloaded."""
CONCURRENT = 16
"""Deliveries in flight at once (one lease renewal per group of this many)."""


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
        DueDelivery(
            r.id,
            str(r.url or ""),
            str(r.secret or ""),
            str(r.event_id or ""),
            str(r.event_type or ""),
            r.payload.encode("utf-8", errors="surrogateescape") if isinstance(r.payload, str) else b"",
            r.attempts or 0,
        )
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
            "last_error": error.replace("\x00", "\\x00")[:2000],  # PostgreSQL text holds no NUL
            "next_attempt_at": now + timedelta(seconds=webhook_backoff_seconds(attempts)),
        }
    with writing(engine) as conn:
        conn.execute(
            update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values)
        )


class WebhookSender:
    """Sends due deliveries; one replica at a time (lease ``webhooks``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int,
        timeout: float = 10.0,
        dependencies: Dependencies | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy or OutboundPolicy()
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.dependencies = dependencies or Dependencies()
        self.holder = uuid.uuid4().hex

    async def _post(self, client: httpx.AsyncClient, delivery: DueDelivery) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "X-Driftloop-Event": delivery.event_type,
            "X-Driftloop-Delivery": str(delivery.id),
            "X-Driftloop-Event-Id": delivery.event_id,
            "X-Driftloop-Signature": webhook_signature(delivery.secret, delivery.payload),
        }
        # resolved and checked now (the name may point elsewhere since it was registered), and the
        # connection goes to the address checked, not to a second resolution of the name
        addresses = await asyncio.to_thread(self.policy.check, delivery.url)
        url, headers["Host"], tls_name = pinned(delivery.url, addresses[0])
        request = client.build_request(
            "POST", url, content=delivery.payload, headers=headers, extensions={"sni_hostname": tls_name}
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.is_success:
                return None
            answer = b""
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) >= ANSWER_BYTES:
                    break
            text = answer[:200].decode("utf-8", errors="replace")
            where = f" to {response.headers.get('location', '')[:200]}" if response.is_redirect else ""
            return f"HTTP {response.status_code}{where}: {text}"
        finally:
            await response.aclose()

    async def _send(self, client: httpx.AsyncClient, delivery: DueDelivery) -> str | None:
        """None when the receiver accepted; otherwise what went wrong, as the attempt's error."""
        try:
            return await asyncio.wait_for(self._post(client, delivery), timeout=self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except OutboundRefused as exc:
            return f"refused: {exc}"
        except OSError as exc:  # the name does not resolve
            return f"cannot resolve the host: {exc}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad URL or anything odd about this one delivery: its error, not ours
            log.warning("webhook delivery %d failed unexpectedly", delivery.id, exc_info=True)
            return f"{type(exc).__name__}: {exc}"

    async def _deliver(self, client: httpx.AsyncClient, delivery: DueDelivery) -> None:
        error = await self._send(client, delivery)
        await asyncio.to_thread(record_attempt, self.engine, delivery, error, self.max_attempts)
        if error is not None and delivery.attempts + 1 >= self.max_attempts:
            log.warning(
                "webhook delivery %d to %s failed %d times and is marked failed: %s",
                delivery.id,
                delivery.url[:200],
                self.max_attempts,
                error[:300],
            )

    async def send_once(self, client: httpx.AsyncClient) -> int:
        due = []
        if await asyncio.to_thread(acquire_lease, self.engine, "webhooks", self.holder, 30.0):
            due = await asyncio.to_thread(due_deliveries, self.engine, 50)
        for start in range(0, len(due), CONCURRENT):
            if start and not await asyncio.to_thread(
                acquire_lease, self.engine, "webhooks", self.holder, 30.0
            ):
                break  # another replica took over: it sends the rest
            group = due[start : start + CONCURRENT]
            outcomes = await asyncio.gather(
                *(self._deliver(client, d) for d in group), return_exceptions=True
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if errors:  # the attempt could not be recorded: the database is away; those are sent again
                raise errors[0]
        return len(due)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        delay = interval
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            try:
                while not stop.is_set():
                    try:
                        await self.send_once(client)
                    except Exception as exc:  # the database is away: deliveries stay queued
                        self.dependencies.away("webhook sender", f"{type(exc).__name__}: {exc}")
                        delay = min(max(delay * 2, interval), 30.0)
                    else:
                        self.dependencies.back("webhook sender")
                        delay = interval
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
            finally:
                with contextlib.suppress(Exception):  # the database may be the thing that is away
                    await asyncio.to_thread(release_lease, self.engine, "webhooks", self.holder)
