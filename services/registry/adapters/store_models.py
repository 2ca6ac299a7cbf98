"""Registered models in the store: create, read, search, update, delete (with everything under them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from services.registry.adapters.db import reading, writing
from services.registry.adapters.store_base import StoreBase, check_limit, utc_now, with_tags
from services.registry.adapters.tables import (
    alias_history,
    aliases,
    model_tags,
    model_versions,
    registered_models,
    version_tags,
    webhook_deliveries,
    webhooks,
)
from services.registry.domain import rules
from services.registry.domain.auth import Principal
from services.registry.domain.schemas import ModelCreate, ModelOut, ModelUpdate, Page
from services.registry.errors import Conflict, Invalid, NotFound
from shared.events import ModelCreated, ModelDeleted, ModelUpdated

# parametrised once: pydantic would otherwise rebuild the class whenever its cached one was collected
_ModelPage = Page[ModelOut]


class ModelStore(StoreBase):
    """Registered models."""

    def _model_out(self, conn: Connection, row: Any) -> ModelOut:
        return ModelOut(
            name=row.name,
            description=row.description,
            task_type=row.task_type,
            tags=row.tags,
            feature_schema=row.feature_schema,
            training_recipe=row.training_recipe,
            drift_thresholds=row.drift_thresholds,
            latest_version=row.last_version,
            aliases=self._aliases_of(conn, row.id),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )

    def create_model(self, body: ModelCreate, actor: Principal) -> ModelOut:
        rules.check_model_name(body.name)
        now = utc_now()
        values = {
            "name": body.name,
            "description": body.description,
            "task_type": body.task_type,
            "tags": body.tags,
            "feature_schema": body.feature_schema.model_dump(mode="json"),
            "training_recipe": body.training_recipe,
            "drift_thresholds": body.drift_thresholds.model_dump(mode="json")
            if body.drift_thresholds
            else None,
            "last_version": 0,
            "created_at": now,
            "created_by": actor.name,
            "updated_at": now,
            "updated_by": actor.name,
        }
        try:
            with writing(self.engine) as conn:
                model_id = conn.execute(registered_models.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
                self._replace_tags(conn, model_tags, "model_id", model_id, body.tags)
                self._emit(conn, model_id, ModelCreated(model_name=body.name, created_by=actor.name))
                self._audit(
                    conn, actor, "model.create", body.name, body.name, None, body.model_dump(mode="json")
                )
                return self._model_out(conn, self._model_row(conn, body.name))
        except IntegrityError:
            raise Conflict(f"a model named {body.name!r} already exists", field="name") from None

    def check_model_exists(self, name: str) -> None:
        """:class:`NotFound` unless a model named ``name`` exists (one indexed read)."""
        with reading(self.engine) as conn:
            found = conn.execute(
                select(registered_models.c.id).where(registered_models.c.name == name)
            ).first()
        if found is None:
            raise NotFound(f"no registered model named {name!r}", field="name")

    def get_model(self, name: str) -> ModelOut:
        with reading(self.engine) as conn:
            return self._model_out(conn, self._model_row(conn, name))

    def list_models(
        self,
        *,
        name_prefix: str = "",
        tags: Sequence[str] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelOut]:
        conditions: list[ColumnElement[bool]] = []
        if name_prefix:
            conditions.append(registered_models.c.name.startswith(name_prefix, autoescape=True))
        if page_token:
            conditions.append(registered_models.c.name > str(rules.decode_page_token(page_token)))
        limit = check_limit(limit)
        query = (
            with_tags(select(registered_models), model_tags, "model_id", registered_models.c.id, tags)
            .where(*conditions)
            .order_by(registered_models.c.name)
            .limit(limit + 1)
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
            items = [self._model_out(conn, r) for r in rows[:limit]]
        token = rules.encode_page_token(items[-1].name) if len(rows) > limit else None
        return _ModelPage(items=items, next_page_token=token)

    def update_model(self, name: str, body: ModelUpdate, actor: Principal) -> ModelOut:
        changes = body.model_dump(mode="json", exclude_unset=True)
        if not changes:
            raise Invalid("nothing to update: send at least one field", field="body")
        with writing(self.engine) as conn:
            row = self._model_row(conn, name, lock=True)
            before = {k: getattr(row, k) for k in changes}
            changed = rules.changed_fields(before, changes)
            if changed:
                conn.execute(
                    update(registered_models)
                    .where(registered_models.c.id == row.id)
                    .values(**{k: changes[k] for k in changed}, updated_at=utc_now(), updated_by=actor.name)
                )
                if "tags" in changed:
                    self._replace_tags(conn, model_tags, "model_id", row.id, changes["tags"])
                self._emit(
                    conn, row.id, ModelUpdated(model_name=name, changed_fields=changed, updated_by=actor.name)
                )
                self._audit(
                    conn,
                    actor,
                    "model.update",
                    name,
                    name,
                    {k: before[k] for k in changed},
                    {k: changes[k] for k in changed},
                )
            return self._model_out(conn, self._model_row(conn, name))

    def delete_model(self, name: str, actor: Principal, *, force: bool = False) -> None:
        with writing(self.engine) as conn:
            row = self._model_row(conn, name, lock=True)
            current = self._aliases_of(conn, row.id)
            if current and not force:
                listed = ", ".join(f"{a}→{v}" for a, v in sorted(current.items()))
                raise Conflict(
                    f"model {name!r} still has aliases ({listed}); delete them first or pass force=true",
                    field="force",
                )
            self._emit(conn, None, ModelDeleted(model_name=name, deleted_by=actor.name))
            self._audit(
                conn,
                actor,
                "model.delete",
                name,
                name,
                {"latest_version": row.last_version, "aliases": current},
                None,
            )
            for table, column in (
                (alias_history, "model_id"),
                (aliases, "model_id"),
                (model_tags, "model_id"),
            ):
                conn.execute(table.delete().where(table.c[column] == row.id))
            version_ids = select(model_versions.c.id).where(model_versions.c.model_id == row.id)
            conn.execute(version_tags.delete().where(version_tags.c.version_id.in_(version_ids)))
            hook_ids = select(webhooks.c.id).where(webhooks.c.model_id == row.id)
            conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id.in_(hook_ids)))
            conn.execute(webhooks.delete().where(webhooks.c.model_id == row.id))
            conn.execute(model_versions.delete().where(model_versions.c.model_id == row.id))
            conn.execute(registered_models.delete().where(registered_models.c.id == row.id))
