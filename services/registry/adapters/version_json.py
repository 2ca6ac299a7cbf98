"""A version as :class:`VersionOut`'s JSON, built by the database: a search page costs one query and a join.

SQLite (``json_object``) and PostgreSQL (``json_build_object``) write each item; Python only joins the
items' texts into the page. The JSON columns are embedded as stored (they were validated and written as
JSON), datetimes are written the way pydantic and msgspec write a UTC datetime (``...T12:00:00.123456Z``,
no fraction when it is zero), and aliases come sorted, so the page says exactly what
``Page[VersionOut]`` says (tests/integration/test_registry_search.py compares them on both databases).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from services.registry.adapters.tables import aliases, model_versions
from services.registry.domain.mlflow_filter import MODEL_ID_TAG, RESERVED_TAG_PREFIX, RUN_ID_TAG, SOURCE_TAG
from services.registry.domain.mlflow_mapping import MLFLOW_STATUS, STAGE_ALIASES

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

    if postgres:
        has_profile: Any = v.reference_profile.is_not(None)
    else:
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
        ("aliases", _alias_list(postgres)),
        ("created_at", timestamp(v.created_at)),
        ("created_by", v.created_by),
        ("updated_at", timestamp(v.updated_at)),
    ]
    return _json_object(postgres, fields)


def mlflow_version_json(dialect: str, model_name: Any) -> ColumnElement[Any]:
    """One version as MLflow's ``ModelVersion`` message (``mlflow_mapping.version_json``) in JSON text, for a
    row of ``model_versions`` named ``model_name``: no Python per version, and on SQLite no dearer than the
    native item (17-18 against 19-21 µs a read, 2026-12-08). tests/integration/test_registry_mlflow_json.py
    compares it with the route's answer on both databases.

    Timestamps are milliseconds since the epoch, truncated like ``mlflow_mapping.ms``; tags come from the
    version's ``tags`` column, reserved ``mlflow.*`` keys left out, sorted by code point as Python sorts."""
    v = model_versions.c
    postgres = dialect == "postgresql"

    def text(value: str) -> Any:  # a constant written into the statement, not one more bound parameter
        return literal_column("'" + value.replace("'", "''") + "'")

    def milliseconds(column: Any) -> Any:
        if postgres:
            return cast(func.floor(func.extract("epoch", column) * 1000), BigInteger)
        # SQLite holds 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds, then the first 3 fraction digits
        seconds = cast(func.strftime(text("%s"), column), Integer) * literal_column("1000")
        return seconds + cast(func.substr(column, literal_column("21"), literal_column("3")), Integer)

    def tag(key: str, default: Any) -> Any:
        if postgres:
            value: Any = v.tags.op("->>")(text(key))
        else:
            value = func.json_extract(v.tags, text(f'$."{key}"'))
        return func.coalesce(value, default)

    each = (func.json_each_text if postgres else func.json_each)(v.tags).table_valued("key", "value")
    own = func.substr(each.c.key, literal_column("1"), literal_column(str(len(RESERVED_TAG_PREFIX))))
    pair = (func.json_build_object if postgres else func.json_object)(
        text("key"), each.c.key, text("value"), each.c.value
    )
    if postgres:
        by_code_point = each.c.key.collate("C")  # Python's order, not the locale's
        tags: Any = func.coalesce(
            select(func.json_agg(aggregate_order_by(pair, by_code_point)))
            .where(own != text(RESERVED_TAG_PREFIX))
            .scalar_subquery(),
            literal_column("'[]'::json"),
        )
    else:
        pairs = (
            select(pair.label("pair")).where(own != text(RESERVED_TAG_PREFIX)).order_by(each.c.key)
        ).subquery()
        tags = func.json(select(func.json_group_array(func.json(pairs.c.pair))).scalar_subquery())
    # the version's stage: the first of STAGE_ALIASES' aliases it holds, found in one lookup
    ranked = list(STAGE_ALIASES)
    rank = case(*((aliases.c.alias == text(a), literal_column(str(i))) for i, a in enumerate(ranked)))
    first = (
        select(func.min(rank))
        .where(aliases.c.model_id == v.model_id, aliases.c.version == v.version)
        .where(aliases.c.alias.in_([text(a) for a in ranked]))
        .scalar_subquery()
    )
    stage = case(
        {literal_column(str(i)): text(STAGE_ALIASES[a]) for i, a in enumerate(ranked)},
        value=first,
        else_=text("None"),
    )
    status = case(
        *((v.status == text(ours), text(theirs)) for ours, theirs in MLFLOW_STATUS.items()),
        else_=text("READY"),
    )
    fields: list[tuple[str, Any]] = [
        ("name", model_name),
        ("version", cast(v.version, String)),
        ("creation_timestamp", milliseconds(v.created_at)),
        ("last_updated_timestamp", milliseconds(v.updated_at)),
        ("user_id", v.created_by),
        ("current_stage", stage),
        ("description", v.description),
        ("source", tag(SOURCE_TAG, v.artifact_uri)),
        ("run_id", tag(RUN_ID_TAG, text(""))),
        ("model_id", tag(MODEL_ID_TAG, text(""))),
        ("status", status),
        ("status_message", text("")),
        ("tags", tags),
        ("run_link", text("")),
        ("aliases", _alias_list(postgres)),
    ]
    return _json_object(postgres, fields)


def _alias_list(postgres: bool) -> Any:
    """The row's aliases as a sorted JSON array."""
    v = model_versions.c
    alias_of_row = and_(aliases.c.model_id == v.model_id, aliases.c.version == v.version)
    if postgres:
        return func.coalesce(
            select(func.json_agg(aggregate_order_by(aliases.c.alias, aliases.c.alias)))
            .where(alias_of_row)
            .scalar_subquery(),
            literal_column("'[]'::json"),
        )
    names = (
        select(aliases.c.alias).where(alias_of_row).order_by(aliases.c.alias).correlate(model_versions)
    ).subquery()
    # a subquery's value loses SQLite's JSON subtype: json() gives it back, or it would be a string
    return func.json(select(func.json_group_array(names.c.alias)).scalar_subquery())


def _json_object(postgres: bool, fields: list[tuple[str, Any]]) -> ColumnElement[Any]:
    build = func.json_build_object if postgres else func.json_object
    args: list[Any] = []
    for key, value in fields:
        args += [literal_column(f"'{key}'"), value]
    item = build(*args)
    return cast(item, String) if postgres else item
