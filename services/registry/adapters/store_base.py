"""What every part of the registry's SQL adapter shares: row lookups, the outbox, the audit log, paging.

The store (:mod:`.store`) reads rows, lets :mod:`..domain.rules` decide, and writes the change, the event that
announces it (``outbox``, relayed to Kafka and webhooks) and the audit entry together, so a committed change
is always announced and always audited, and a failed one is neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, bindparam, select, update

from services.registry.adapters.tables import (
    aliases,
    audit_log,
    change_counter,
    model_versions,
    outbox,
    registered_models,
    webhook_deliveries,
    webhooks,
)
from services.registry.domain import rules
from services.registry.domain.auth import Principal
from services.registry.errors import Invalid, NotFound
from shared.codec import encode
from shared.events import Event

MAX_PAGE = 1000

VERSION_COLUMNS = [c for c in model_versions.c if c.name != "reference_profile"]

COUNT_CHANGE = update(change_counter).where(change_counter.c.id == 1).values(value=change_counter.c.value + 1)

# built once and executed with each row's values: compiled once, not rebuilt (and re-keyed) per write
_INSERT_OUTBOX = outbox.insert()
_INSERT_AUDIT = audit_log.insert()
_INSERT_DELIVERY = webhook_deliveries.insert()
_HOOKS_OF_MODEL = select(webhooks.c.id, webhooks.c.event_types).where(
    webhooks.c.model_id == bindparam("model_id")
)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log: who did what to which target, with the state before and after."""

    actor: Principal
    action: str
    model_name: str | None
    target: str
    before: Any = None
    after: Any = None


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """The engine and the helpers every concept's store uses inside its transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _model_row(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        query = select(registered_models).where(registered_models.c.name == name)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no registered model named {name!r}", field="name")
        return row

    def _version_row(self, conn: Connection, model_id: int, version: int, *, model_name: str) -> Any:
        row = conn.execute(
            select(*VERSION_COLUMNS).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"model {model_name!r} has no version {version}", field="version")
        return row

    def _aliases_of(self, conn: Connection, model_id: int) -> dict[str, int]:
        rows = conn.execute(
            select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
        ).all()
        return {r.alias: r.version for r in rows}

    def _emit(self, conn: Connection, model_id: int | None, event: Event) -> None:
        """Queue ``event`` for Kafka and for the model's webhooks and count the change, in the caller's
        transaction (the count tells every replica's resolve cache that it may be out of date)."""
        self._emit_all(conn, [(model_id, event)])

    def _emit_all(self, conn: Connection, events: Sequence[tuple[int | None, Event]]) -> None:
        """:meth:`_emit` for several events of one transaction: one statement per table, not per event."""
        now = utc_now()
        payloads = [encode(event).decode() for _, event in events]
        conn.execute(COUNT_CHANGE)
        conn.execute(
            _INSERT_OUTBOX,
            [
                {
                    "model_name": event.model_name,
                    "event_type": event.event_type,
                    "event_id": str(event.event_id),
                    "payload": payload,
                    "created_at": now,
                }
                for (_, event), payload in zip(events, payloads, strict=True)
            ],
        )
        hooks_of: dict[int, list[Any]] = {}
        deliveries = []
        for (model_id, event), payload in zip(events, payloads, strict=True):
            if model_id is None:
                continue
            if model_id not in hooks_of:
                hooks_of[model_id] = list(conn.execute(_HOOKS_OF_MODEL, {"model_id": model_id}))
            deliveries += [
                {
                    "webhook_id": hook.id,
                    "event_id": str(event.event_id),
                    "event_type": event.event_type,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": "",
                }
                for hook in hooks_of[model_id]
                if hook.event_types is None or event.event_type in hook.event_types
            ]
        if deliveries:
            conn.execute(_INSERT_DELIVERY, deliveries)

    def _audit(
        self,
        conn: Connection,
        actor: Principal,
        action: str,
        model_name: str | None,
        target: str,
        before: Any = None,
        after: Any = None,
    ) -> None:
        self._audit_all(conn, [AuditEntry(actor, action, model_name, target, before, after)])

    @staticmethod
    def _audit_all(conn: Connection, entries: Sequence[AuditEntry]) -> None:
        """:meth:`_audit` for several entries of one transaction, in one statement."""
        now = utc_now()
        conn.execute(
            _INSERT_AUDIT,
            [
                {
                    "at": now,
                    "actor": e.actor.name,
                    "role": e.actor.role_name,
                    "action": e.action,
                    "model_name": e.model_name,
                    "target": e.target,
                    "before": json_safe(e.before),
                    "after": json_safe(e.after),
                }
                for e in entries
            ],
        )

    @staticmethod
    def _replace_tags(conn: Connection, table: Any, owner: str, owner_id: int, tags: dict[str, str]) -> None:
        conn.execute(table.delete().where(table.c[owner] == owner_id))
        if tags:
            conn.execute(table.insert(), [{owner: owner_id, "key": k, "value": v} for k, v in tags.items()])


def json_safe(value: Any) -> Any:
    """``value`` with datetimes and other non-JSON scalars as strings, so any before/after can be audited."""
    return json.loads(json.dumps(value, default=str))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def with_tags(
    query: Select[Any], table: Any, owner: str, owner_column: Any, tags: Sequence[str]
) -> Select[Any]:
    """``query`` joined to one row of ``table`` per tag filter (``key=value`` or ``key``).

    Joins, not ``IN (subquery)``: the database starts from one tag's (key, value, owner) index entries and
    checks the others with one probe each of the same index, instead of first listing every owner of every
    tag (a common tag, like ``env=prod``, lists half of all versions). One row per (owner, key): no
    duplicates.
    """
    for key, value in rules.parse_tag_filters(tags):
        tag = table.alias()
        on = [tag.c[owner] == owner_column, tag.c.key == key]
        if value is not None:
            on.append(tag.c.value == value)
        query = query.join(tag, and_(*on))
    return query
