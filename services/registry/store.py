"""The registry's metadata store: every write in one transaction with its outbox event and audit row.

This is the SQL adapter. It reads rows, lets :mod:`.domain` decide, and writes the change, the event that
announces it (``outbox``, relayed to Kafka and webhooks) and the audit entry together, so a committed change
is always announced and always audited, and a failed one is neither.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from services.registry import domain
from services.registry.auth import Principal
from services.registry.db import reading, writing
from services.registry.errors import Conflict, Invalid, NotFound
from services.registry.schemas import (
    AliasAt,
    AliasHistoryEntry,
    AliasOut,
    AuditEntry,
    Lineage,
    ModelCreate,
    ModelOut,
    ModelUpdate,
    Page,
    VersionCreate,
    VersionOut,
    VersionUpdate,
    WebhookCreate,
    WebhookDeliveryOut,
    WebhookOut,
)
from services.registry.tables import (
    alias_history,
    aliases,
    audit_log,
    model_tags,
    model_versions,
    outbox,
    registered_models,
    version_tags,
    webhook_deliveries,
    webhooks,
)
from shared.artifacts import StoredArtifact
from shared.codec import encode
from shared.events import (
    AliasAction,
    AliasChanged,
    Event,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    ModelVersionRegistered,
    ModelVersionStatusChanged,
    VersionStatus,
)
from shared.profile import ReferenceProfile

MAX_PAGE = 1000

_VERSION_COLUMNS = [c for c in model_versions.c if c.name != "reference_profile"]
_GET_VERSION = (
    select(*_VERSION_COLUMNS, model_versions.c.reference_profile.is_not(None).label("has_profile"))
    .join(registered_models, registered_models.c.id == model_versions.c.model_id)
    .where(registered_models.c.name == bindparam("name"), model_versions.c.version == bindparam("version"))
)
_ALIASES_OF_VERSION = select(aliases.c.alias).where(
    aliases.c.model_id == bindparam("model_id"), aliases.c.version == bindparam("version")
)

# The hottest read (every model server, every poll): built once, one indexed join, no transaction.
_RESOLVE_ALIAS = (
    select(
        aliases.c.alias,
        aliases.c.version,
        aliases.c.updated_at,
        aliases.c.updated_by,
        model_versions.c.artifact_uri,
        model_versions.c.artifact_sha256,
        model_versions.c.status,
    )
    .select_from(registered_models)
    .join(aliases, aliases.c.model_id == registered_models.c.id)
    .join(
        model_versions,
        and_(
            model_versions.c.model_id == registered_models.c.id, model_versions.c.version == aliases.c.version
        ),
    )
    .where(registered_models.c.name == bindparam("name"), aliases.c.alias == bindparam("alias"))
)


def _now() -> datetime:
    return datetime.now(UTC)


class ResolvedAlias(AliasOut):
    """An alias with the artifact behind it: all a model server needs, in one read."""

    artifact_uri: str
    artifact_sha256: str
    status: VersionStatus


class RegistryStore:
    """Registered models, versions, aliases, audit and webhooks in a SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ helpers

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
            select(*_VERSION_COLUMNS).where(
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
        """Queue ``event`` for Kafka and for the model's webhooks, in the caller's transaction."""
        payload = encode(event).decode()
        conn.execute(
            outbox.insert().values(
                model_name=event.model_name,
                event_type=event.event_type,
                event_id=str(event.event_id),
                payload=payload,
                created_at=_now(),
            )
        )
        if model_id is None:
            return
        for hook in conn.execute(
            select(webhooks.c.id, webhooks.c.event_types).where(webhooks.c.model_id == model_id)
        ):
            if hook.event_types is None or event.event_type in hook.event_types:
                conn.execute(
                    webhook_deliveries.insert().values(
                        webhook_id=hook.id,
                        event_id=str(event.event_id),
                        event_type=event.event_type,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=_now(),
                        last_error="",
                    )
                )

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
        conn.execute(
            audit_log.insert().values(
                at=_now(),
                actor=actor.name,
                role=actor.role_name,
                action=action,
                model_name=model_name,
                target=target,
                before=_json_safe(before),
                after=_json_safe(after),
            )
        )

    @staticmethod
    def _replace_tags(conn: Connection, table: Any, owner: str, owner_id: int, tags: dict[str, str]) -> None:
        conn.execute(table.delete().where(table.c[owner] == owner_id))
        if tags:
            conn.execute(table.insert(), [{owner: owner_id, "key": k, "value": v} for k, v in tags.items()])

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

    @staticmethod
    def _version_out(row: Any, model_name: str, alias_names: list[str]) -> VersionOut:
        # rows were validated on the way in: construct without validating again (lists of 1000 add up)
        return VersionOut.model_construct(
            model_name=model_name,
            version=row.version,
            status=VersionStatus(row.status),
            description=row.description,
            artifact_uri=row.artifact_uri,
            artifact_sha256=row.artifact_sha256,
            artifact_size=row.artifact_size,
            metrics=row.metrics,
            params=row.params,
            tags=row.tags,
            lineage=Lineage.model_validate(row.lineage),
            has_reference_profile=bool(row.has_profile),
            aliases=sorted(alias_names),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
        )

    # ------------------------------------------------------------------ models

    def create_model(self, body: ModelCreate, actor: Principal) -> ModelOut:
        domain.check_model_name(body.name)
        now = _now()
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
        conditions += _tag_conditions(model_tags, "model_id", registered_models.c.id, tags)
        if page_token:
            conditions.append(registered_models.c.name > str(domain.decode_page_token(page_token)))
        limit = _check_limit(limit)
        query = (
            select(registered_models).where(*conditions).order_by(registered_models.c.name).limit(limit + 1)
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
            items = [self._model_out(conn, r) for r in rows[:limit]]
        token = domain.encode_page_token(items[-1].name) if len(rows) > limit else None
        return Page[ModelOut](items=items, next_page_token=token)

    def update_model(self, name: str, body: ModelUpdate, actor: Principal) -> ModelOut:
        changes = body.model_dump(mode="json", exclude_unset=True)
        if not changes:
            raise Invalid("nothing to update: send at least one field", field="body")
        with writing(self.engine) as conn:
            row = self._model_row(conn, name, lock=True)
            before = {k: getattr(row, k) for k in changes}
            changed = domain.changed_fields(before, changes)
            if changed:
                conn.execute(
                    update(registered_models)
                    .where(registered_models.c.id == row.id)
                    .values(**{k: changes[k] for k in changed}, updated_at=_now(), updated_by=actor.name)
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

    # ------------------------------------------------------------------ versions

    def register_version(
        self, name: str, body: VersionCreate, artifact: StoredArtifact, actor: Principal
    ) -> VersionOut:
        """Give the next number to a new version; the model row's counter serialises concurrent callers."""
        now = _now()
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            if body.lineage.parent_version is not None and body.lineage.parent_version > model.last_version:
                raise Invalid(
                    f"parent version {body.lineage.parent_version} does not exist",
                    field="lineage.parent_version",
                )
            number = conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model.id)
                .values(last_version=registered_models.c.last_version + 1)
                .returning(registered_models.c.last_version)
            ).scalar_one()
            values = {
                "model_id": model.id,
                "version": number,
                "status": body.status.value,
                "description": body.description,
                "artifact_uri": artifact.uri,
                "artifact_sha256": artifact.sha256,
                "artifact_size": artifact.size,
                "metrics": body.metrics,
                "params": body.params,
                "tags": body.tags,
                "lineage": body.lineage.model_dump(mode="json"),
                "reference_profile": body.reference_profile.model_dump(mode="json")
                if body.reference_profile
                else None,
                "created_at": now,
                "created_by": actor.name,
                "updated_at": now,
            }
            version_id = conn.execute(model_versions.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
            self._replace_tags(conn, version_tags, "version_id", version_id, body.tags)
            self._emit(
                conn,
                model.id,
                ModelVersionRegistered(
                    model_name=name,
                    version=number,
                    artifact_uri=artifact.uri,
                    artifact_sha256=artifact.sha256,
                    created_by=actor.name,
                ),
            )
            audit_after = {k: v for k, v in values.items() if k not in ("reference_profile", "model_id")}
            self._audit(conn, actor, "version.register", name, f"{name}/{number}", None, audit_after)
            return self._get_version(conn, model, number)

    def _get_version(self, conn: Connection, model: Any, version: int) -> VersionOut:
        row = conn.execute(
            select(
                *_VERSION_COLUMNS, model_versions.c.reference_profile.is_not(None).label("has_profile")
            ).where(model_versions.c.model_id == model.id, model_versions.c.version == version)
        ).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no version {version}", field="version")
        names = [a for a, v in self._aliases_of(conn, model.id).items() if v == version]
        return self._version_out(row, model.name, names)

    def get_version(self, name: str, version: int) -> VersionOut:
        with reading(self.engine) as conn:
            row = conn.execute(_GET_VERSION, {"name": name, "version": version}).first()
            if row is None:
                self._model_row(conn, name)
                raise NotFound(f"model {name!r} has no version {version}", field="version")
            names = conn.execute(
                _ALIASES_OF_VERSION, {"model_id": row.model_id, "version": version}
            ).scalars()
            return self._version_out(row, name, list(names))

    def reference_profile(self, name: str, version: int) -> ReferenceProfile:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            profile = conn.execute(
                select(model_versions.c.reference_profile).where(
                    model_versions.c.model_id == model.id, model_versions.c.version == version
                )
            ).first()
        if profile is None:
            raise NotFound(f"model {name!r} has no version {version}", field="version")
        if profile[0] is None:
            raise NotFound(
                f"version {version} of {name!r} has no reference profile", field="reference_profile"
            )
        return ReferenceProfile.model_validate(profile[0])

    def search_versions(
        self,
        *,
        name: str | None = None,
        name_prefix: str = "",
        status: VersionStatus | None = None,
        tags: Sequence[str] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> Page[VersionOut]:
        """Versions newest first (by model, then version), filtered; keyset-paged so deep pages stay fast."""
        limit = _check_limit(limit)
        conditions: list[ColumnElement[bool]] = []
        if name is not None:
            conditions.append(registered_models.c.name == name)
        elif name_prefix:
            conditions.append(registered_models.c.name.startswith(name_prefix, autoescape=True))
        if status is not None:
            conditions.append(model_versions.c.status == status.value)
        conditions += _tag_conditions(version_tags, "version_id", model_versions.c.id, tags)
        if page_token:
            position = domain.decode_page_token(page_token)
            if not (isinstance(position, list) and len(position) == 2):
                raise Invalid("page_token is not one this registry issued", field="page_token")
            last_name, last_version = str(position[0]), int(position[1])
            conditions.append(
                or_(
                    registered_models.c.name > last_name,
                    and_(registered_models.c.name == last_name, model_versions.c.version < last_version),
                )
            )
        query = (
            select(
                *_VERSION_COLUMNS,
                registered_models.c.name.label("model_name"),
                model_versions.c.reference_profile.is_not(None).label("has_profile"),
            )
            .join(registered_models, registered_models.c.id == model_versions.c.model_id)
            .where(*conditions)
            .order_by(registered_models.c.name, model_versions.c.version.desc())
            .limit(limit + 1)
        )
        with reading(self.engine) as conn:
            if name is not None:
                self._model_row(conn, name)
            rows = conn.execute(query).all()[: limit + 1]
            ids = {r.model_id for r in rows}
            alias_rows = (
                conn.execute(
                    select(aliases.c.model_id, aliases.c.alias, aliases.c.version).where(
                        aliases.c.model_id.in_(ids)
                    )
                ).all()
                if ids
                else []
            )
        by_version: dict[tuple[int, int], list[str]] = {}
        for a in alias_rows:
            by_version.setdefault((a.model_id, a.version), []).append(a.alias)
        items = [
            self._version_out(r, r.model_name, by_version.get((r.model_id, r.version), []))
            for r in rows[:limit]
        ]
        token = (
            domain.encode_page_token([items[-1].model_name, items[-1].version]) if len(rows) > limit else None
        )
        return Page[VersionOut](items=items, next_page_token=token)

    def update_version(self, name: str, version: int, body: VersionUpdate, actor: Principal) -> VersionOut:
        changes = body.model_dump(mode="json", exclude_unset=True)
        if not changes:
            raise Invalid("nothing to update: send at least one field", field="body")
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model.id, version, model_name=name)
            before = {k: getattr(row, k) for k in changes}
            changed = domain.changed_fields(before, changes)
            if "status" in changed:
                current, new = VersionStatus(row.status), VersionStatus(changes["status"])
                if not domain.status_change_allowed(current, new):
                    raise Conflict(f"a {current.value} version cannot become {new.value}", field="status")
                if new != VersionStatus.READY:
                    held = [a for a, v in self._aliases_of(conn, model.id).items() if v == version]
                    if held:
                        raise Conflict(
                            f"version {version} is behind alias(es) {', '.join(sorted(held))}; move them first",
                            field="status",
                        )
            if changed:
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.id == row.id)
                    .values(**{k: changes[k] for k in changed}, updated_at=_now())
                )
                if "tags" in changed:
                    self._replace_tags(conn, version_tags, "version_id", row.id, changes["tags"])
                if "status" in changed:
                    self._emit(
                        conn,
                        model.id,
                        ModelVersionStatusChanged(
                            model_name=name,
                            version=version,
                            status=VersionStatus(changes["status"]),
                            previous_status=VersionStatus(row.status),
                            changed_by=actor.name,
                        ),
                    )
                self._audit(
                    conn,
                    actor,
                    "version.update",
                    name,
                    f"{name}/{version}",
                    {k: before[k] for k in changed},
                    {k: changes[k] for k in changed},
                )
            return self._get_version(conn, model, version)

    # ------------------------------------------------------------------ aliases

    def resolve_alias(self, name: str, alias: str) -> ResolvedAlias:
        with self.engine.connect().execution_options(single_read=True) as conn:
            row = conn.execute(_RESOLVE_ALIAS, {"name": name, "alias": alias}).first()
            if row is None:
                self._model_row(conn, name)
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
        return ResolvedAlias(
            model_name=name,
            alias=row.alias,
            version=row.version,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            artifact_uri=row.artifact_uri,
            artifact_sha256=row.artifact_sha256,
            status=VersionStatus(row.status),
        )

    def list_aliases(self, name: str) -> list[AliasOut]:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                select(aliases).where(aliases.c.model_id == model.id).order_by(aliases.c.alias)
            ).all()
        return [
            AliasOut(
                model_name=name,
                alias=r.alias,
                version=r.version,
                updated_at=r.updated_at,
                updated_by=r.updated_by,
            )
            for r in rows
        ]

    def _move_alias(
        self,
        conn: Connection,
        model: Any,
        alias: str,
        version: int | None,
        action: AliasAction,
        actor: Principal,
        reason: str,
    ) -> None:
        previous = self._aliases_of(conn, model.id).get(alias)
        now = _now()
        if version is None:
            conn.execute(aliases.delete().where(aliases.c.model_id == model.id, aliases.c.alias == alias))
        elif previous is None:
            conn.execute(
                aliases.insert().values(
                    model_id=model.id, alias=alias, version=version, updated_at=now, updated_by=actor.name
                )
            )
        else:
            conn.execute(
                update(aliases)
                .where(aliases.c.model_id == model.id, aliases.c.alias == alias)
                .values(version=version, updated_at=now, updated_by=actor.name)
            )
        conn.execute(
            alias_history.insert().values(
                model_id=model.id,
                alias=alias,
                action=action.value,
                version=version,
                previous_version=previous,
                changed_at=now,
                changed_by=actor.name,
                reason=reason,
            )
        )
        self._emit(
            conn,
            model.id,
            AliasChanged(
                model_name=model.name,
                alias=alias,
                action=action,
                version=version,
                previous_version=previous,
                changed_by=actor.name,
            ),
        )
        self._audit(
            conn,
            actor,
            f"alias.{action.value}",
            model.name,
            f"{model.name}@{alias}",
            {"version": previous},
            {"version": version, "reason": reason},
        )

    def _check_servable(self, conn: Connection, model: Any, version: int) -> None:
        row = self._version_row(conn, model.id, version, model_name=model.name)
        if row.status != VersionStatus.READY.value:
            raise Conflict(
                f"version {version} of {model.name!r} is {row.status}; only ready versions can take an alias",
                field="version",
            )

    def set_alias(self, name: str, alias: str, version: int, actor: Principal, reason: str = "") -> AliasOut:
        domain.check_alias(alias)
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            self._check_servable(conn, model, version)
            previous = self._aliases_of(conn, model.id).get(alias)
            if previous != version:
                action = AliasAction.SET if previous is None else AliasAction.MOVED
                self._move_alias(conn, model, alias, version, action, actor, reason)
        return self._alias_out(name, alias)

    def _alias_out(self, name: str, alias: str) -> AliasOut:
        resolved = self.resolve_alias(name, alias)
        return AliasOut.model_validate(resolved.model_dump(include=set(AliasOut.model_fields)))

    def delete_alias(self, name: str, alias: str, actor: Principal, reason: str = "") -> None:
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            if alias not in self._aliases_of(conn, model.id):
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
            self._move_alias(conn, model, alias, None, AliasAction.DELETED, actor, reason)

    def _history(self, conn: Connection, model_id: int, alias: str) -> list[Any]:
        return list(
            conn.execute(
                select(alias_history)
                .where(alias_history.c.model_id == model_id, alias_history.c.alias == alias)
                .order_by(alias_history.c.id)
            ).all()
        )

    @staticmethod
    def _moves(rows: list[Any]) -> list[domain.AliasMove]:
        return [domain.AliasMove(AliasAction(r.action), r.version, r.changed_at) for r in rows]

    def rollback_alias(self, name: str, alias: str, actor: Principal, reason: str = "") -> AliasOut:
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            ready = conn.execute(
                select(model_versions.c.version).where(
                    model_versions.c.model_id == model.id,
                    model_versions.c.status == VersionStatus.READY.value,
                )
            ).scalars()
            target = domain.rollback_target(self._moves(self._history(conn, model.id, alias)), ready)
            if target is None:
                raise Conflict(
                    f"alias {alias!r} of {name!r} has no earlier ready version to go back to", "alias"
                )
            self._move_alias(conn, model, alias, target, AliasAction.ROLLED_BACK, actor, reason)
        return self._alias_out(name, alias)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasHistoryEntry]:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            query = select(alias_history).where(alias_history.c.model_id == model.id)
            if alias is not None:
                query = query.where(alias_history.c.alias == alias)
            rows = conn.execute(query.order_by(alias_history.c.id)).all()
        return [
            AliasHistoryEntry(
                alias=r.alias,
                action=AliasAction(r.action),
                version=r.version,
                previous_version=r.previous_version,
                changed_at=r.changed_at,
                changed_by=r.changed_by,
                reason=r.reason,
            )
            for r in rows
        ]

    def alias_at(self, name: str, alias: str, when: datetime) -> AliasAt:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            moves = self._moves(self._history(conn, model.id, alias))
        return AliasAt(model_name=name, alias=alias, at=when, version=domain.version_at(moves, when))

    # ------------------------------------------------------------------ audit

    def audit(
        self,
        *,
        model_name: str | None = None,
        actor: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> Page[AuditEntry]:
        limit = _check_limit(limit)
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
        token = domain.encode_page_token(items[-1].id) if len(rows) > limit else None
        return Page[AuditEntry](items=items, next_page_token=token)

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, name: str, body: WebhookCreate, actor: Principal) -> WebhookOut:
        secret = body.secret or secrets.token_urlsafe(32)
        now = _now()
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
            row = conn.execute(
                select(webhooks).where(webhooks.c.model_id == model.id, webhooks.c.id == hook_id)
            ).first()
            if row is None:
                raise NotFound(f"model {name!r} has no webhook {hook_id}", field="webhook_id")
            conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == hook_id))
            conn.execute(webhooks.delete().where(webhooks.c.id == hook_id))
            self._audit(
                conn, actor, "webhook.delete", name, f"{name}/webhooks/{hook_id}", {"url": row.url}, None
            )

    def webhook_deliveries(self, name: str, hook_id: int, limit: int = 100) -> list[WebhookDeliveryOut]:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            owned = conn.execute(
                select(webhooks.c.id).where(webhooks.c.model_id == model.id, webhooks.c.id == hook_id)
            ).first()
            if owned is None:
                raise NotFound(f"model {name!r} has no webhook {hook_id}", field="webhook_id")
            rows = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.webhook_id == hook_id)
                .order_by(webhook_deliveries.c.id.desc())
                .limit(_check_limit(limit))
            ).all()
        return [WebhookDeliveryOut.model_validate(r._asdict()) for r in rows]


def _json_safe(value: Any) -> Any:
    """``value`` with datetimes and other non-JSON scalars as strings, so any before/after can be audited."""
    return json.loads(json.dumps(value, default=str))


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def _tag_conditions(
    table: Any, owner: str, owner_column: Any, tags: Sequence[str]
) -> list[ColumnElement[bool]]:
    """``owner IN (owners with the tag)``: lets the database start from the (key, value) index, so a rare or
    absent tag costs an index probe, not a scan of every version."""
    conditions: list[ColumnElement[bool]] = []
    for key, value in domain.parse_tag_filters(tags):
        owners = select(table.c[owner]).where(table.c.key == key)
        if value is not None:
            owners = owners.where(table.c.value == value)
        conditions.append(owner_column.in_(owners))
    return conditions
