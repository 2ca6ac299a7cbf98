"""A version as JSON text written by the database, :class:`VersionOut`'s or MLflow's ``ModelVersion``: a
search page or a first get-version costs one query, with no Python object per version.

Each item is one string concatenation: the keys are constants of the statement, text values are quoted by
the database (``json_quote``, ``to_json``) and the JSON columns are embedded as stored (they were validated
and written as JSON), not parsed again: 8 µs a read on SQLite against 19 µs with ``json_object`` (2026-12-08).
Datetimes are written the way pydantic and msgspec write a UTC datetime (``...T12:00:00.123456Z``, no
fraction when it is zero) and aliases come sorted, so a page says what ``Page[VersionOut]`` and
``mlflow_mapping.version_json`` say (tests/integration/test_registry_search.py compares them on both
databases).
"""

from __future__ import annotations

import json
from functools import reduce
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from services.registry.adapters.tables import aliases, model_versions, version_tags
from services.registry.domain.mlflow_filter import MODEL_ID_TAG, RESERVED_TAG_PREFIX, RUN_ID_TAG, SOURCE_TAG
from services.registry.domain.mlflow_mapping import MLFLOW_STATUS, STAGE_ALIASES

_JSON_COLUMNS = ("metrics", "params", "tags", "lineage")

Field = tuple[str, Any, bool]
"""A key, its value, and whether the value is already JSON text (a number, an array, a stored column)."""


def version_item_json(dialect: str, model_name: Any) -> ColumnElement[Any]:
    """One version's ``VersionOut`` as JSON text, for a row of ``model_versions`` named ``model_name``."""
    v = model_versions.c
    postgres = dialect == "postgresql"

    def timestamp(column: Any) -> Any:
        if postgres:
            text = func.to_char(column, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
        else:  # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff' on SQLite
            text = func.replace(cast(column, String), _text(" "), _text("T"))
        return func.replace(text, _text(".000000"), _text(""), type_=String).op("||")(_text("Z"))

    has_profile = case((v.reference_profile.is_(None), _text("false")), else_=_text("true"))
    fields: list[Field] = [
        ("model_name", model_name, False),
        ("version", v.version, True),
        ("status", v.status, False),
        ("description", v.description, False),
        ("artifact_uri", v.artifact_uri, False),
        ("artifact_sha256", v.artifact_sha256, False),
        ("artifact_size", v.artifact_size, True),
        *((name, v[name], True) for name in _JSON_COLUMNS),
        ("has_reference_profile", has_profile, True),
        ("aliases", _alias_list(postgres), True),
        ("created_at", timestamp(v.created_at), False),
        ("created_by", v.created_by, False),
        ("updated_at", timestamp(v.updated_at), False),
    ]
    return _json_text(postgres, fields)


def mlflow_version_json(dialect: str, model_name: Any) -> ColumnElement[Any]:
    """One version as MLflow's ``ModelVersion`` message (``mlflow_mapping.version_json``) in JSON text, for a
    row of ``model_versions`` named ``model_name``.

    Timestamps are milliseconds since the epoch, truncated like ``mlflow_mapping.ms``; tags come from
    ``version_tags`` (primary-key reads, no JSON parsed), reserved ``mlflow.*`` keys left out of the list,
    sorted by code point as Python sorts."""
    v = model_versions.c
    postgres = dialect == "postgresql"

    def milliseconds(column: Any) -> Any:
        if postgres:
            return cast(func.floor(func.extract("epoch", column) * 1000), BigInteger)
        # SQLite holds 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds, then the first 3 fraction digits
        seconds = cast(func.strftime(_text("%s"), column), Integer) * literal_column("1000")
        return seconds + cast(func.substr(column, literal_column("21"), literal_column("3")), Integer)

    def tag(key: str, default: Any) -> Any:  # one primary-key read of version_tags
        value = select(version_tags.c.value).where(
            version_tags.c.version_id == v.id, version_tags.c.key == _text(key)
        )
        return func.coalesce(value.scalar_subquery(), default)

    own = and_(
        version_tags.c.version_id == v.id,
        func.substr(version_tags.c.key, literal_column("1"), literal_column(str(len(RESERVED_TAG_PREFIX))))
        != _text(RESERVED_TAG_PREFIX),
    )
    if postgres:
        pair: Any = func.json_build_object(
            _text("key"), version_tags.c.key, _text("value"), version_tags.c.value
        )
        by_code_point = version_tags.c.key.collate("C")  # Python's order, not the locale's
        tags: Any = func.coalesce(
            select(func.json_agg(aggregate_order_by(pair, by_code_point))).where(own).scalar_subquery(),
            literal_column("'[]'::json"),
        )
    else:  # the (version_id, key) index gives the keys in code-point order; each pair is concatenated
        pair = _json_text(
            postgres, [("key", version_tags.c.key, False), ("value", version_tags.c.value, False)]
        )
        pairs = select(pair.label("pair")).where(own).order_by(version_tags.c.key).correlate(model_versions)
        joined = select(func.group_concat(pairs.subquery().c.pair, _text(","))).scalar_subquery()
        tags = _text("[").op("||")(func.coalesce(joined, _text(""))).op("||")(_text("]"))

    def holds(alias: str) -> Any:  # one primary-key read of aliases
        return select(aliases.c.version).where(
            aliases.c.model_id == v.model_id, aliases.c.alias == _text(alias)
        )

    stage = case(
        *(
            (v.version == holds(alias).scalar_subquery(), _quoted(name))
            for alias, name in STAGE_ALIASES.items()
        ),
        else_=_quoted("None"),
    )
    status = case(
        *((v.status == _text(ours), _quoted(theirs)) for ours, theirs in MLFLOW_STATUS.items()),
        else_=_quoted("READY"),
    )
    fields: list[Field] = [
        ("name", model_name, False),
        ("version", cast(v.version, String), False),
        ("creation_timestamp", milliseconds(v.created_at), True),
        ("last_updated_timestamp", milliseconds(v.updated_at), True),
        ("user_id", v.created_by, False),
        ("current_stage", stage, True),
        ("description", v.description, False),
        ("source", tag(SOURCE_TAG, v.artifact_uri), False),
        ("run_id", tag(RUN_ID_TAG, _text("")), False),
        ("model_id", tag(MODEL_ID_TAG, _text("")), False),
        ("status", status, True),
        ("status_message", _quoted(""), True),
        ("tags", tags, True),
        ("run_link", _quoted(""), True),
        ("aliases", _alias_list(postgres), True),
    ]
    return _json_text(postgres, fields)


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
    return select(func.json_group_array(names.c.alias)).scalar_subquery()


def _text(value: str) -> Any:
    """A string constant written into the statement (not one more bound parameter)."""
    return literal_column("'" + value.replace("'", "''") + "'", String)


def _quoted(value: str) -> Any:
    """A string constant as JSON text."""
    return _text(json.dumps(value))


def _json_text(postgres: bool, fields: list[Field]) -> ColumnElement[Any]:
    """``{"key": value, ...}`` as one concatenation: each value quoted as a JSON string by the database,
    unless it is JSON text already."""
    parts: list[Any] = []
    for i, (key, value, is_json) in enumerate(fields):
        parts.append(_text(("{" if i == 0 else ",") + json.dumps(key) + ":"))
        if is_json:  # grouped: || binds tighter than arithmetic in SQLite
            parts.append(cast(value, Text) if postgres else value.self_group())
        else:
            parts.append(cast(func.to_json(value), Text) if postgres else func.json_quote(value))
    parts.append(_text("}"))
    return reduce(lambda text, part: text.op("||")(part), parts)
