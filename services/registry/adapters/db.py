"""The registry's database engine: SQLite (default) or PostgreSQL by URL, tuned so writers never race.

SQLite write transactions start with ``BEGIN IMMEDIATE``: a writer takes the lock up front and others wait
(``busy_timeout``) instead of failing halfway. PostgreSQL locks the model row it bumps the version on.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with WAL, foreign keys and immediate write transactions on SQLite."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=32,
            max_overflow=32,
            # the connection used last is warmest (each has its own page cache): an uncached search took
            # about 10% less CPU than with connections taken in turn (docs/registry.md)
            pool_use_lifo=True,
            json_deserializer=msgspec.json.decode,  # 4 JSON columns per version row: keep reads cheap
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(
        url, pool_size=16, max_overflow=16, pool_pre_ping=True, json_deserializer=msgspec.json.decode
    )


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("single_read", False):
            return  # one SELECT needs no transaction: SQLite runs it atomically on its own
        immediate = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_sqlite_writers: dict[str, threading.Lock] = {}
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock | None:
    """SQLite allows one writer: queue this process's writers on a lock (first come, first served) rather
    than in SQLite's busy handler, which sleeps and retries and so lets unlucky writers wait a second."""
    if engine.dialect.name != "sqlite":
        return None
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(str(engine.url), threading.Lock())


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back when it raises."""
    lock = _writer_lock(engine)
    with lock if lock is not None else contextlib.nullcontext(), engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; on SQLite each statement reads alone (no BEGIN/COMMIT round trip).

    Reads here are a row and its aliases at most: a move landing between two statements shows the newer
    state in the second, which a reader cannot tell from reading a moment later.
    """
    with engine.connect().execution_options(single_read=True) as conn:
        yield conn


@functools.lru_cache(maxsize=512)
def compiled_select(dialect: Dialect, statement: ClauseElement) -> SQLCompiler:
    """``statement`` compiled once for ``dialect`` (statements are built once and kept, see
    store_versions.py); TypeError for one whose parameters need SQLAlchemy's conversions (dates, JSON)."""
    built = statement.compile(dialect=dialect)
    if not isinstance(built, SQLCompiler) or built._bind_processors:
        raise TypeError("plain reads take SELECTs whose parameters need no conversion")
    return built


def driver_arguments(compiled: SQLCompiler, params: dict[str, Any]) -> Any:
    """``params`` in the form the driver takes for ``compiled``'s text (a list for ``?``, else a dict)."""
    values = compiled.construct_params(params)
    order = compiled.positiontup
    return [values[k] for k in order] if compiled.positional and order else values


def fetch_plain(conn: Connection, statement: ClauseElement, params: dict[str, Any]) -> list[Any]:
    """Every row of a plain SELECT, run on ``conn``'s driver connection: what ``conn.execute`` returns,
    without SQLAlchemy's per-execution work (the statement's cache key, result objects), which cost a
    first-time version search about a fifth of its time. Driver errors come out as SQLAlchemy's, as from
    ``conn.execute``."""
    compiled = compiled_select(conn.dialect, statement)
    arguments = driver_arguments(compiled, params)
    dbapi_connection: Any = conn.connection.dbapi_connection
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(compiled.string, arguments)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(compiled.string, arguments, exc, conn.dialect.loaded_dbapi.Error) from exc
