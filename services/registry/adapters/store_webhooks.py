"""Webhooks in the store: subscriptions per model and their deliveries."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, select

from services.registry.adapters.db import reading, writing
from services.registry.adapters.store_base import StoreBase, check_limit, utc_now
from services.registry.adapters.tables import webhook_deliveries, webhooks
from services.registry.domain.auth import Principal
from services.registry.domain.schemas import WebhookCreate, WebhookDeliveryOut, WebhookOut
from services.registry.errors import NotFound


class WebhookStore(StoreBase):
    """Webhooks."""

    @staticmethod
    def _webhook_row(conn: Connection, model: Any, hook_id: int) -> Any:
        row = conn.execute(
            select(webhooks).where(webhooks.c.model_id == model.id, webhooks.c.id == hook_id)
        ).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no webhook {hook_id}", field="webhook_id")
        return row

    def create_webhook(self, name: str, body: WebhookCreate, actor: Principal) -> WebhookOut:
        secret = body.secret or secrets.token_urlsafe(32)
        now = utc_now()
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            hook_id = conn.execute(
                webhooks.insert().values(
                    model_id=model.id,
                    url=str(body.url),
                    secret=secret,
                    event_types=body.event_types,
                    created_at=now,
                    created_by=actor.name,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            self._audit(
                conn,
                actor,
                "webhook.create",
                name,
                f"{name}/webhooks/{hook_id}",
                None,
                {"url": str(body.url), "event_types": body.event_types},
            )
        return WebhookOut(
            id=hook_id,
            model_name=name,
            url=str(body.url),
            event_types=body.event_types,
            created_at=now,
            created_by=actor.name,
            secret=secret,
        )

    def list_webhooks(self, name: str) -> list[WebhookOut]:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(webhooks).where(webhooks.c.model_id == model.id).order_by(webhooks.c.id)
            ).all()
        return [
            WebhookOut(
                id=r.id,
                model_name=name,
                url=r.url,
                event_types=r.event_types,
                created_at=r.created_at,
                created_by=r.created_by,
            )
            for r in rows
        ]

    def delete_webhook(self, name: str, hook_id: int, actor: Principal) -> None:
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._webhook_row(conn, model, hook_id)
            conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == hook_id))
            conn.execute(webhooks.delete().where(webhooks.c.id == hook_id))
            self._audit(
                conn, actor, "webhook.delete", name, f"{name}/webhooks/{hook_id}", {"url": row.url}, None
            )

    def webhook_deliveries(self, name: str, hook_id: int, limit: int = 100) -> list[WebhookDeliveryOut]:
        with reading(self.engine) as conn:
            self._webhook_row(conn, self._model_row(conn, name), hook_id)
            rows = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.webhook_id == hook_id)
                .order_by(webhook_deliveries.c.id.desc())
                .limit(check_limit(limit))
            ).all()
        return [WebhookDeliveryOut.model_validate(r._asdict()) for r in rows]
