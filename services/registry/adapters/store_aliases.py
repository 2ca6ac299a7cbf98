"""Aliases in the store: resolve, set/move, delete, roll back, history and "which version at time T"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from services.registry.adapters.db import reading, writing
from services.registry.adapters.store_base import StoreBase, utc_now
from services.registry.adapters.tables import alias_history, aliases, model_versions, registered_models
from services.registry.domain import rules
from services.registry.domain.auth import Principal
from services.registry.domain.schemas import AliasAt, AliasHistoryEntry, AliasOut
from services.registry.errors import Conflict, NotFound
from shared.events import AliasAction, AliasChanged, VersionStatus

# What a resolve reads when resolve_cache has no current body: built once, one indexed join.
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


class ResolvedAlias(AliasOut):
    """An alias with the artifact behind it: all a model server needs, in one read."""

    artifact_uri: str
    artifact_sha256: str
    status: VersionStatus


class AliasStore(StoreBase):
    """Aliases and their history."""

    def resolve_alias(self, name: str, alias: str) -> ResolvedAlias:
        with reading(self.engine) as conn:
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
        now = utc_now()
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
        rules.check_alias(alias)
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

    @staticmethod
    def _history(conn: Connection, model_id: int, alias: str | None) -> list[Any]:
        """The model's alias moves (one alias's if ``alias`` is given), oldest first."""
        query = select(alias_history).where(alias_history.c.model_id == model_id)
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        return list(conn.execute(query.order_by(alias_history.c.id)).all())

    @staticmethod
    def _moves(rows: list[Any]) -> list[rules.AliasMove]:
        return [rules.AliasMove(AliasAction(r.action), r.version, r.changed_at) for r in rows]

    def rollback_alias(self, name: str, alias: str, actor: Principal, reason: str = "") -> AliasOut:
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            ready = conn.execute(
                select(model_versions.c.version).where(
                    model_versions.c.model_id == model.id,
                    model_versions.c.status == VersionStatus.READY.value,
                )
            ).scalars()
            target = rules.rollback_target(self._moves(self._history(conn, model.id, alias)), ready)
            if target is None:
                raise Conflict(
                    f"alias {alias!r} of {name!r} has no earlier ready version to go back to", "alias"
                )
            self._move_alias(conn, model, alias, target, AliasAction.ROLLED_BACK, actor, reason)
        return self._alias_out(name, alias)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasHistoryEntry]:
        with reading(self.engine) as conn:
            model = self._model_row(conn, name)
            rows = self._history(conn, model.id, alias)
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
        return AliasAt(model_name=name, alias=alias, at=when, version=rules.version_at(moves, when))
