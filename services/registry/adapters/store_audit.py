"""The audit log in the store: every write, newest first."""

from __future__ import annotations

from sqlalchemy import select

from services.registry.adapters.db import reading
from services.registry.adapters.store_base import StoreBase, check_limit
from services.registry.adapters.tables import audit_log
from services.registry.domain import rules
from services.registry.domain.schemas import AuditEntry, Page

# parametrised once: pydantic would otherwise rebuild the class whenever its cached one was collected
_AuditPage = Page[AuditEntry]


class AuditStore(StoreBase):
    """The audit log."""

    def audit(
        self,
        *,
        model_name: str | None = None,
        actor: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> Page[AuditEntry]:
        limit = check_limit(limit)
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
        if model_name is not None:
            query = query.where(audit_log.c.model_name == model_name)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        items = [AuditEntry.model_validate(r._asdict()) for r in rows[:limit]]
        token = rules.encode_page_token(items[-1].id) if len(rows) > limit else None
        return _AuditPage(items=items, next_page_token=token)
