"""Model versions in the store: register (numbered by the model's counter), read, search, update."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from services.registry.adapters.db import reading, writing
from services.registry.adapters.store_base import (
    COUNT_CHANGE,
    VERSION_COLUMNS,
    StoreBase,
    check_limit,
    utc_now,
    with_tags,
)
from services.registry.adapters.tables import aliases, model_versions, registered_models, version_tags
from services.registry.domain import rules
from services.registry.domain.auth import Principal
from services.registry.domain.schemas import Lineage, Page, VersionCreate, VersionOut, VersionUpdate
from services.registry.errors import Conflict, Invalid, NotFound
from shared.artifacts import StoredArtifact
from shared.events import (
    ModelVersionDeleted,
    ModelVersionRegistered,
    ModelVersionStatusChanged,
    VersionStatus,
)
from shared.profile import ReferenceProfile

# a version as VersionOut shows it: every column but the (large) reference profile, and whether it has one
_VERSION_OUT_COLUMNS = [
    *VERSION_COLUMNS,
    model_versions.c.reference_profile.is_not(None).label("has_profile"),
]
_GET_VERSION = (
    select(*_VERSION_OUT_COLUMNS)
    .join(registered_models, registered_models.c.id == model_versions.c.model_id)
    .where(registered_models.c.name == bindparam("name"), model_versions.c.version == bindparam("version"))
)
_ALIASES_OF_VERSION = select(aliases.c.alias).where(
    aliases.c.model_id == bindparam("model_id"), aliases.c.version == bindparam("version")
)


# parametrised once: pydantic would otherwise rebuild the class whenever its cached one was collected
_VersionPage = Page[VersionOut]


class VersionStore(StoreBase):
    """Model versions."""

    def register_version(
        self, name: str, body: VersionCreate, artifact: StoredArtifact, actor: Principal
    ) -> VersionOut:
        """Give the next number to a new version; the model row's counter serialises concurrent callers."""
        now = utc_now()
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
                    artifact_size=artifact.size,
                    metrics=body.metrics,
                    lineage=values["lineage"],
                ),
            )
            audit_after = {k: v for k, v in values.items() if k not in ("reference_profile", "model_id")}
            self._audit(conn, actor, "version.register", name, f"{name}/{number}", None, audit_after)
            return self._get_version(conn, name, number)

    def _get_version(self, conn: Connection, name: str, version: int) -> VersionOut:
        row = conn.execute(_GET_VERSION, {"name": name, "version": version}).first()
        if row is None:
            self._model_row(conn, name)
            raise NotFound(f"model {name!r} has no version {version}", field="version")
        return self._version_out(row, name, self._aliases_of_version(conn, row.model_id, version))

    @staticmethod
    def _aliases_of_version(conn: Connection, model_id: int, version: int) -> list[str]:
        rows = conn.execute(_ALIASES_OF_VERSION, {"model_id": model_id, "version": version})
        return list(rows.scalars())

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

    def get_version(self, name: str, version: int) -> VersionOut:
        with reading(self.engine) as conn:
            return self._get_version(conn, name, version)

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
        rows, by_version, limit = self._search_rows(name, name_prefix, status, tags, limit, page_token)
        items = [
            self._version_out(r, r.model_name, by_version.get((r.model_id, r.version), []))
            for r in rows[:limit]
        ]
        token = (
            rules.encode_page_token([items[-1].model_name, items[-1].version]) if len(rows) > limit else None
        )
        return _VersionPage(items=items, next_page_token=token)

    def search_versions_json(
        self,
        *,
        name: str | None = None,
        name_prefix: str = "",
        status: VersionStatus | None = None,
        tags: Sequence[str] = (),
        limit: int = 100,
        page_token: str | None = None,
    ) -> bytes:
        """:meth:`search_versions`'s page as JSON, encoded straight from the rows (no model per item): the
        same bytes' meaning, at a fraction of the cost, for the cached search (fast_resolve.py)."""
        rows, by_version, limit = self._search_rows(name, name_prefix, status, tags, limit, page_token)
        items = [
            {
                "model_name": r.model_name,
                "version": r.version,
                "status": r.status,
                "description": r.description,
                "artifact_uri": r.artifact_uri,
                "artifact_sha256": r.artifact_sha256,
                "artifact_size": r.artifact_size,
                "metrics": r.metrics,
                "params": r.params,
                "tags": r.tags,
                "lineage": r.lineage,  # stored as Lineage.model_dump(mode="json"): every field, in order
                "has_reference_profile": bool(r.has_profile),
                "aliases": sorted(by_version.get((r.model_id, r.version), [])),
                "created_at": r.created_at,
                "created_by": r.created_by,
                "updated_at": r.updated_at,
            }
            for r in rows[:limit]
        ]
        last = rows[limit - 1] if len(rows) > limit else None
        token = rules.encode_page_token([last.model_name, last.version]) if last is not None else None
        return msgspec.json.encode({"items": items, "next_page_token": token})

    def _search_rows(
        self,
        name: str | None,
        name_prefix: str,
        status: VersionStatus | None,
        tags: Sequence[str],
        limit: int,
        page_token: str | None,
    ) -> tuple[list[Any], dict[tuple[int, int], list[str]], int]:
        """The page's rows (one more than ``limit`` if there is a next page) and each version's aliases."""
        limit = check_limit(limit)
        conditions: list[ColumnElement[bool]] = []
        if name is not None:
            conditions.append(registered_models.c.name == name)
        elif name_prefix:
            conditions.append(registered_models.c.name.startswith(name_prefix, autoescape=True))
        if status is not None:
            conditions.append(model_versions.c.status == status.value)
        if page_token:
            position = rules.decode_page_token(page_token)
            if not (isinstance(position, list) and len(position) == 2 and rules.is_row_id(position[1])):
                raise Invalid("page_token is not one this registry issued", field="page_token")
            last_name, last_version = str(position[0]), int(position[1])
            conditions.append(
                or_(
                    registered_models.c.name > last_name,
                    and_(registered_models.c.name == last_name, model_versions.c.version < last_version),
                )
            )
        keys = select(model_versions.c.id, registered_models.c.name, model_versions.c.version).join(
            registered_models, registered_models.c.id == model_versions.c.model_id
        )
        # the page's keys first, then its rows: every candidate is sorted as (name, version, id), not whole
        page = (
            with_tags(keys, version_tags, "version_id", model_versions.c.id, tags)
            .where(*conditions)
            .order_by(registered_models.c.name, model_versions.c.version.desc())
            .limit(limit + 1)
            .subquery("page")
        )
        query = (
            select(*_VERSION_OUT_COLUMNS, page.c.name.label("model_name"))
            .join_from(page, model_versions, model_versions.c.id == page.c.id)
            .order_by(page.c.name, page.c.version.desc())
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
        return list(rows), by_version, limit

    def update_version(self, name: str, version: int, body: VersionUpdate, actor: Principal) -> VersionOut:
        changes = body.model_dump(mode="json", exclude_unset=True)
        if not changes:
            raise Invalid("nothing to update: send at least one field", field="body")
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model.id, version, model_name=name)
            before = {k: getattr(row, k) for k in changes}
            changed = rules.changed_fields(before, changes)
            if "status" in changed:
                current, new = VersionStatus(row.status), VersionStatus(changes["status"])
                if not rules.status_change_allowed(current, new):
                    raise Conflict(f"a {current.value} version cannot become {new.value}", field="status")
                if new != VersionStatus.READY:
                    held = self._aliases_of_version(conn, model.id, version)
                    if held:
                        raise Conflict(
                            f"version {version} is behind alias(es) {', '.join(sorted(held))}; move them first",
                            field="status",
                        )
            if changed:
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.id == row.id)
                    .values(**{k: changes[k] for k in changed}, updated_at=utc_now())
                )
                if "tags" in changed:
                    self._replace_tags(conn, version_tags, "version_id", row.id, changes["tags"])
                if "status" not in changed:  # not announced, but cached reads of the version must see it
                    conn.execute(COUNT_CHANGE)
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
            return self._get_version(conn, name, version)

    def delete_version(self, name: str, version: int, actor: Principal) -> None:
        """Delete a version no alias points at; announced as ``model_version_deleted``, never renumbered."""
        with writing(self.engine) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model.id, version, model_name=name)
            held = self._aliases_of_version(conn, model.id, version)
            if held:
                raise Conflict(
                    f"version {version} is behind alias(es) {', '.join(sorted(held))}; move or delete them first",
                    field="version",
                )
            self._emit(
                conn, model.id, ModelVersionDeleted(model_name=name, version=version, deleted_by=actor.name)
            )
            self._audit(
                conn,
                actor,
                "version.delete",
                name,
                f"{name}/{version}",
                {"artifact_uri": row.artifact_uri, "artifact_sha256": row.artifact_sha256, "tags": row.tags},
                None,
            )
            conn.execute(version_tags.delete().where(version_tags.c.version_id == row.id))
            conn.execute(model_versions.delete().where(model_versions.c.id == row.id))
