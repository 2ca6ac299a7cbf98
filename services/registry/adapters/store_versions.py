"""Model versions in the store: register (numbered by the model's counter), read, search, update."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, Select, and_, bindparam, or_, select, update
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import Subquery

from services.registry.adapters.db import fetch_plain, reading, writing
from services.registry.adapters.group_commit import GroupCommit
from services.registry.adapters.store_base import (
    COUNT_CHANGE,
    VERSION_COLUMNS,
    AuditEntry,
    StoreBase,
    check_limit,
    utc_now,
)
from services.registry.adapters.tables import aliases, model_versions, registered_models, version_tags
from services.registry.adapters.version_json import mlflow_version_json, version_item_json
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


# the model's next ``count`` version numbers: one statement bumps the counter (locking the model row until
# commit, on PostgreSQL as on SQLite's single writer) and returns the last with the model's id
_NEXT_NUMBERS = (
    update(registered_models)
    .where(registered_models.c.name == bindparam("model_name"))
    .values(last_version=registered_models.c.last_version + bindparam("count"))
    .returning(registered_models.c.id, registered_models.c.last_version)
)
# built once: executed with the rows' values, a statement is compiled once, not rebuilt per registration;
# the new versions' ids come back in the rows' order, for their tags
_INSERT_VERSIONS = model_versions.insert().returning(model_versions.c.id, sort_by_parameter_order=True)
_INSERT_TAG = version_tags.insert()


# parametrised once: pydantic would otherwise rebuild the class whenever its cached one was collected
_VersionPage = Page[VersionOut]


@dataclass(frozen=True)
class Registration:
    """One version to register: which model, what the caller sent, the artifact it checked, and who."""

    name: str
    body: VersionCreate
    artifact: StoredArtifact
    actor: Principal


def _version_row(r: Registration, model_id: int, number: int, lineage: Any, now: Any) -> dict[str, Any]:
    body, artifact = r.body, r.artifact
    return {
        "model_id": model_id,
        "version": number,
        "status": body.status.value,
        "description": body.description,
        "artifact_uri": artifact.uri,
        "artifact_sha256": artifact.sha256,
        "artifact_size": artifact.size,
        "metrics": body.metrics,
        "params": body.params,
        "tags": body.tags,
        "lineage": lineage,
        "reference_profile": body.reference_profile.model_dump(mode="json")
        if body.reference_profile
        else None,
        "created_at": now,
        "created_by": r.actor.name,
        "updated_at": now,
    }


def _registered(r: Registration, number: int, now: Any) -> VersionOut:
    """The answer to a registration, from what was written."""
    body, artifact = r.body, r.artifact
    return VersionOut.model_construct(
        model_name=r.name,
        version=number,
        status=body.status,
        description=body.description,
        artifact_uri=artifact.uri,
        artifact_sha256=artifact.sha256,
        artifact_size=artifact.size,
        metrics=body.metrics,
        params=body.params,
        tags=body.tags,
        lineage=body.lineage,
        has_reference_profile=body.reference_profile is not None,
        aliases=[],
        created_at=now,
        created_by=r.actor.name,
        updated_at=now,
    )


class VersionStore(StoreBase):
    """Model versions."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._registrations: GroupCommit[Registration, VersionOut] = GroupCommit(self._register_all)

    def register_version(
        self, name: str, body: VersionCreate, artifact: StoredArtifact, actor: Principal
    ) -> VersionOut:
        """Give the next number to a new version; the model row's counter serialises concurrent callers.

        Registrations arriving together are committed together (:mod:`.group_commit`): one transaction
        and one statement per table for all of them, each answered as if it had been alone."""
        return self._registrations.submit(Registration(name, body, artifact, actor))

    def _register_all(self, batch: Sequence[Registration]) -> list[VersionOut]:
        """Write ``batch`` in one transaction: number each model's versions (bump its counter by its count,
        which also locks the model row), insert the versions, their tags, then the change count, the
        outbox events (:meth:`_emit_all`) and the audit entries. Answers are built from what was written,
        not read back. Raises (and writes nothing) if any registration fails."""
        now = utc_now()
        counts = Counter(r.name for r in batch)
        with writing(self.engine) as conn:
            numbers: dict[str, tuple[int, int]] = {}  # model name -> (model id, first new number)
            for name, count in sorted(counts.items()):  # models locked in one order: replicas never deadlock
                numbered = conn.execute(_NEXT_NUMBERS, {"model_name": name, "count": count}).first()
                if numbered is None:
                    raise NotFound(f"no registered model named {name!r}", field="name")
                numbers[name] = (numbered[0], numbered[1] - count + 1)
            rows, answers = [], []
            for r in batch:
                model_id, number = numbers[r.name]
                numbers[r.name] = (model_id, number + 1)
                parent = r.body.lineage.parent_version
                if parent is not None and parent >= number:
                    raise Invalid(f"parent version {parent} does not exist", field="lineage.parent_version")
                rows.append(_version_row(r, model_id, number, r.body.lineage.model_dump(mode="json"), now))
            ids = conn.execute(_INSERT_VERSIONS, rows).scalars().all()
            tags = [
                {"version_id": version_id, "key": k, "value": v}
                for version_id, r in zip(ids, batch, strict=True)
                for k, v in r.body.tags.items()
            ]
            if tags:  # a new version has no tag rows to replace
                conn.execute(_INSERT_TAG, tags)
            events: list[tuple[int | None, ModelVersionRegistered]] = []
            audits = []
            for r, row in zip(batch, rows, strict=True):
                number = row["version"]
                events.append(
                    (
                        row["model_id"],
                        ModelVersionRegistered(
                            model_name=r.name,
                            version=number,
                            artifact_uri=r.artifact.uri,
                            artifact_sha256=r.artifact.sha256,
                            created_by=r.actor.name,
                            artifact_size=r.artifact.size,
                            metrics=r.body.metrics,
                            lineage=row["lineage"],
                        ),
                    )
                )
                after = {k: v for k, v in row.items() if k not in ("reference_profile", "model_id")}
                audits.append(
                    AuditEntry(r.actor, "version.register", r.name, f"{r.name}/{number}", None, after)
                )
                answers.append(_registered(r, number, now))
            self._emit_all(conn, events)
            self._audit_all(conn, audits)
        return answers

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
        """:meth:`search_versions`'s page as JSON, built by the database in one query (each item written by
        version_json.py) and joined here: no object per row."""
        items, token = self.search_versions_items(
            name=name, name_prefix=name_prefix, status=status, tags=tags, limit=limit, page_token=page_token
        )
        return b'{"items":[' + items + b'],"next_page_token":' + msgspec.json.encode(token) + b"}"

    def search_versions_items(
        self,
        *,
        name: str | None = None,
        name_prefix: str = "",
        status: VersionStatus | None = None,
        tags: Sequence[str] = (),
        limit: int = 100,
        page_token: str | None = None,
        mlflow: bool = False,
    ) -> tuple[bytes, str | None]:
        """A search page's items, each as the database wrote it (``VersionOut``'s JSON, or with ``mlflow``
        MLflow's ``ModelVersion``), joined by commas; and the next page's token."""
        shape, params = _search_params(name, name_prefix, status, tags, limit, page_token)
        query = _json_page_query(self.engine.dialect.name, shape, mlflow)
        with reading(self.engine) as conn:
            rows = fetch_plain(conn, query, params)  # (item, name, version)
            if not rows and name is not None:
                self._model_row(conn, name)  # no versions, or no such model (404)
        token = None
        if len(rows) > limit:
            token = rules.encode_page_token([rows[limit - 1][1], rows[limit - 1][2]])
        return ",".join(r[0] for r in rows[:limit]).encode(), token

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
        shape, params = _search_params(name, name_prefix, status, tags, limit, page_token)
        query = _row_page_query(shape)
        with reading(self.engine) as conn:
            if name is not None:
                self._model_row(conn, name)
            rows = conn.execute(query, params).all()
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


# which filters a search has (name, name prefix, status, each tag filter with or without a value, a page
# token): searches of one shape share one statement, so it is built and compiled once, not per request
_Shape = tuple[bool, bool, bool, tuple[bool, ...], bool]


def _search_params(
    name: str | None,
    name_prefix: str,
    status: VersionStatus | None,
    tags: Sequence[str],
    limit: int,
    page_token: str | None,
) -> tuple[_Shape, dict[str, Any]]:
    """The search's shape and its statement's parameters; raises for a bad limit, tag filter or token."""
    params: dict[str, Any] = {"page_size": check_limit(limit) + 1}
    if name is not None:
        params["name"] = name
    elif name_prefix:
        escaped = name_prefix.replace("/", "//").replace("%", "/%").replace("_", "/_")
        params["name_prefix"] = escaped + "%"
    if status is not None:
        params["status"] = status.value
    with_value: list[bool] = []
    for i, (key, value) in enumerate(rules.parse_tag_filters(tags)):
        params[f"tag_key_{i}"] = key
        if value is not None:
            params[f"tag_value_{i}"] = value
        with_value.append(value is not None)
    if page_token:
        position = rules.decode_page_token(page_token)
        if not (isinstance(position, list) and len(position) == 2 and rules.is_row_id(position[1])):
            raise Invalid("page_token is not one this registry issued", field="page_token")
        params["last_name"], params["last_version"] = str(position[0]), int(position[1])
    shape = (name is not None, name is None and bool(name_prefix), status is not None, tuple(with_value))
    return (*shape, bool(page_token)), params


@functools.lru_cache(maxsize=256)
def _page_keys(shape: _Shape) -> Subquery:
    """The page's (id, name, version) keys, one more than the page if there is a next page: every candidate
    is checked and sorted as (name, version) from the indexes, before any version's row is read whole."""
    by_name, by_prefix, by_status, tag_filters, after_token = shape
    keys = select(model_versions.c.id, registered_models.c.name, model_versions.c.version).join(
        registered_models, registered_models.c.id == model_versions.c.model_id
    )
    # joins, not IN (subquery): start from one tag's (key, value, owner) index entries, probe the others
    for i, has_value in enumerate(tag_filters):
        tag = version_tags.alias(f"tag_{i}")
        on = [tag.c.version_id == model_versions.c.id, tag.c.key == bindparam(f"tag_key_{i}")]
        if has_value:
            on.append(tag.c.value == bindparam(f"tag_value_{i}"))
        keys = keys.join(tag, and_(*on))
    conditions: list[ColumnElement[bool]] = []
    if by_name:
        conditions.append(registered_models.c.name == bindparam("name"))
    if by_prefix:
        conditions.append(registered_models.c.name.like(bindparam("name_prefix"), escape="/"))
    if by_status:
        conditions.append(model_versions.c.status == bindparam("status"))
    if after_token:
        last_name: BindParameter[str] = bindparam("last_name")
        conditions.append(
            or_(
                registered_models.c.name > last_name,
                and_(
                    registered_models.c.name == last_name,
                    model_versions.c.version < bindparam("last_version"),
                ),
            )
        )
    return (
        keys.where(*conditions)
        .order_by(registered_models.c.name, model_versions.c.version.desc())
        .limit(bindparam("page_size"))
        .subquery("page")
    )


@functools.lru_cache(maxsize=4)
def get_version_json_query(dialect: str, mlflow: bool = False) -> Select[Any]:
    """One version's ``VersionOut`` JSON (with ``mlflow``, MLflow's ``ModelVersion``) by ``name`` and
    ``version``: one indexed read (the fast path's get-versions, resolve_cache.read_value)."""
    item = (mlflow_version_json if mlflow else version_item_json)(dialect, registered_models.c.name)
    return (
        select(item)
        .join_from(model_versions, registered_models, registered_models.c.id == model_versions.c.model_id)
        .where(
            registered_models.c.name == bindparam("name"), model_versions.c.version == bindparam("version")
        )
    )


@functools.lru_cache(maxsize=256)
def _json_page_query(dialect: str, shape: _Shape, mlflow: bool = False) -> Select[Any]:
    page = _page_keys(shape)
    item = (mlflow_version_json if mlflow else version_item_json)(dialect, page.c.name)
    return (
        select(item.label("item"), page.c.name, page.c.version)
        .join_from(page, model_versions, model_versions.c.id == page.c.id)
        .order_by(page.c.name, page.c.version.desc())
    )


@functools.lru_cache(maxsize=256)
def _row_page_query(shape: _Shape) -> Select[Any]:
    page = _page_keys(shape)
    return (
        select(*_VERSION_OUT_COLUMNS, page.c.name.label("model_name"))
        .join_from(page, model_versions, model_versions.c.id == page.c.id)
        .order_by(page.c.name, page.c.version.desc())
    )
