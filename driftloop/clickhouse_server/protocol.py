"""What an HTTP request asks of ClickHouse: the query, database, format, parameters and settings in its URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# URL parameters that steer the HTTP interface itself rather than the query, so they are never passed to the
# engine as settings (the ClickHouse server treats them the same way).
HTTP_ONLY = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "wait_end_of_query",
        "buffer_size",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "http_native_compression_disable_checksumming_on_decompress",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "add_http_cors_header",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "stacktrace",
        "role",
    }
)


@dataclass(frozen=True)
class QueryOptions:
    """The parts of a request URL that shape how its query runs and is answered."""

    query: str = ""
    database: str = "default"
    default_format: str = "TabSeparated"
    query_id: str = ""
    wait_end_of_query: bool = False
    compress_response: bool = True
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    session_id: str = ""
    session_timeout: str = ""
    session_check: bool = False
    close_session: bool = False
    native_compression: bool = False  # compress=1 or decompress=1: ClickHouse's own block framing
    cors: bool = False
    role: str = ""


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def parse_options(items: Iterable[tuple[str, str]]) -> QueryOptions:
    """Split URL parameters into the query, ``param_*`` bindings, engine settings and HTTP-only switches."""
    values: dict[str, str] = {}
    params: dict[str, str] = {}
    settings: dict[str, str] = {}
    for key, value in items:
        if key.startswith("param_"):
            params[key[6:]] = value
        elif key in HTTP_ONLY:
            values[key] = value
        else:
            settings[key] = value
    return QueryOptions(
        query=values.get("query", ""),
        database=values.get("database") or "default",
        default_format=values.get("default_format") or "TabSeparated",
        query_id=values.get("query_id") or str(uuid.uuid4()),
        wait_end_of_query=_truthy(values.get("wait_end_of_query", "0")),
        # The engine's default for enable_http_compression is 1, so a client that sent Accept-Encoding
        # gets a compressed answer unless it turned the setting off.
        compress_response=_truthy(values.get("enable_http_compression", "1")),
        params=params,
        settings=settings,
        session_id=values.get("session_id", ""),
        session_timeout=values.get("session_timeout", ""),
        session_check=_truthy(values.get("session_check", "0")),
        close_session=_truthy(values.get("close_session", "0")),
        native_compression=_truthy(values.get("compress", "0")) or _truthy(values.get("decompress", "0")),
        cors=_truthy(values.get("add_http_cors_header", "0")),
        role=values.get("role", ""),
    )


def header_options(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """``X-ClickHouse-Database``/``-Format`` as URL parameters; put them first so the URL's own values win."""
    items = []
    for header, key in (("X-ClickHouse-Database", "database"), ("X-ClickHouse-Format", "default_format")):
        value = headers.get(header)
        if value:
            items.append((key, value))
    return items


@dataclass(frozen=True)
class ExternalTable:
    """A file sent with the query (clickhouse-connect ``external_data``), readable as a temporary table."""

    name: str
    structure: str
    fmt: str
    data: bytes


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: ``"UInt8,Map(String, Float64)"`` is two types."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def external_tables(
    files: list[tuple[str, bytes]], fields: list[tuple[str, str]]
) -> tuple[list[ExternalTable], list[tuple[str, str]]]:
    """Pair each sent file with its ``<name>_structure``/``_types``/``_format`` parameters; returns the rest."""
    names = {name for name, _ in files}
    meta: dict[str, str] = {}
    rest = []
    for key, value in fields:
        name, _, kind = key.rpartition("_")
        if name in names and kind in ("structure", "types", "format"):
            meta[key] = value
        else:
            rest.append((key, value))
    tables = []
    for name, data in files:
        structure = meta.get(f"{name}_structure")
        if structure is None:
            types = split_top_level(meta.get(f"{name}_types", ""))
            if not types:
                raise ValueError(f"external table {name!r} needs {name}_structure or {name}_types")
            structure = ", ".join(f"_{i} {t}" for i, t in enumerate(types, 1))
        tables.append(ExternalTable(name, structure, meta.get(f"{name}_format", "TabSeparated"), data))
    return tables, rest


#: Response Content-Type by output format, as the ClickHouse server labels them.
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNames": "text/tab-separated-values; charset=UTF-8",
    "TSVWithNames": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNamesAndTypes": "text/tab-separated-values; charset=UTF-8",
    "TSVWithNamesAndTypes": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompactEachRow": "application/x-ndjson; charset=UTF-8",
    "NDJSON": "application/x-ndjson; charset=UTF-8",
    "JSONLines": "application/x-ndjson; charset=UTF-8",
    "XML": "application/xml; charset=UTF-8",
}


def content_type(fmt: str) -> str:
    if fmt.startswith("Pretty") or fmt in ("Vertical", "Markdown", "Values", "Raw", "LineAsString"):
        return "text/plain; charset=UTF-8"
    return _CONTENT_TYPES.get(fmt, "application/octet-stream")


#: Formats whose output is a plain concatenation of per-block pieces, so results can be sent as they come.
#: Others (JSON, Pretty, Parquet, ...) wrap the whole result and are built in one go.
STREAMABLE_FORMATS = frozenset(
    {
        "Native",
        "RowBinary",
        "RowBinaryWithNames",
        "RowBinaryWithNamesAndTypes",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "JSONEachRow",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "NDJSON",
        "JSONLines",
        "ArrowStream",
    }
)
