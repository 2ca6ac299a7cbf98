"""A version as :class:`VersionOut`'s JSON, built by the database: a search page costs one query and a join.

SQLite (``json_object``) and PostgreSQL (``json_build_object``) write each item; Python only joins the
items' texts into the page. The JSON columns are embedded as stored (they were validated and written as
JSON), datetimes are written the way pydantic and msgspec write a UTC datetime (``...T12:00:00.123456Z``,
no fraction when it is zero), and aliases come sorted, so the page says exactly what
``Page[VersionOut]`` says (tests/integration/test_registry_search.py compares them on both databases).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from services.registry.adapters.tables import aliases, model_versions

_JSON_COLUMNS = ("metrics", "params", "tags", "lineage")


def version_item_json(dialect: str, model_name: Any) -> ColumnElement[Any]:
    """One version's ``VersionOut`` as JSON text, for a row of ``model_versions`` named ``model_name``."""
    v = model_versions.c
    postgres = dialect == "postgresql"

    def embedded(column: Any) -> Any:
        return column if postgres else func.json(column)

    def timestamp(column: Any) -> Any:
        if postgres:
            text = func.to_char(column, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
        else:  # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite
            text = func.replace(cast(column, String), " ", "T")
        return func.replace(text, ".000000", "", type_=String) + "Z"

    alias_of_row = and_(aliases.c.model_id == v.model_id, aliases.c.version == v.version)
    if postgres:
        alias_list: Any = func.coalesce(
            select(func.json_agg(aggregate_order_by(aliases.c.alias, aliases.c.alias)))
            .where(alias_of_row)
            .scalar_subquery(),
            literal_column("'[]'::json"),
        )
        has_profile: Any = v.reference_profile.is_not(None)
    else:
        names = (
            select(aliases.c.alias).where(alias_of_row).order_by(aliases.c.alias).correlate(model_versions)
        ).subquery()
        # a subquery's value loses SQLite's JSON subtype: json() gives it back, or it would be a string
        alias_list = func.json(select(func.json_group_array(names.c.alias)).scalar_subquery())
        has_profile = func.json(case((v.reference_profile.is_(None), "false"), else_="true"))
    fields: list[tuple[str, Any]] = [
        ("model_name", model_name),
        ("version", v.version),
        ("status", v.status),
        ("description", v.description),
        ("artifact_uri", v.artifact_uri),
        ("artifact_sha256", v.artifact_sha256),
        ("artifact_size", v.artifact_size),
        *((name, embedded(v[name])) for name in _JSON_COLUMNS),
        ("has_reference_profile", has_profile),
        ("aliases", alias_list),
        ("created_at", timestamp(v.created_at)),
        ("created_by", v.created_by),
        ("updated_at", timestamp(v.updated_at)),
    ]
    build = func.json_build_object if postgres else func.json_object
    args: list[Any] = []
    for key, value in fields:
        args += [literal_column(f"'{key}'"), value]
    item = build(*args)
    return cast(item, String) if postgres else item
