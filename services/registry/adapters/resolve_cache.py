"""Resolved aliases kept as response bytes, checked against the database's change counter on every call.

Resolve is the call every model server polls; its answer changes only when a change is committed. Each call
reads the one-row ``change_counter`` (which every announced change increments in its own transaction) and
serves the cached bytes only when the counter has not moved since they were read. So a resolve that starts
after a change was committed, through this process or any other replica, answers with that change: there
is no staleness window, and the cost of a hit is one primary-key read on a connection kept for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import ClauseElement

from services.registry.adapters.db import compiled_select, driver_arguments
from services.registry.adapters.store import RegistryStore
from services.registry.errors import Unavailable

_READ_COUNTER = "SELECT value FROM change_counter WHERE id = 1"
MAX_BODIES = 100_000
MAX_BYTES = 64 << 20
"""Past either bound the cached bodies are dropped and rebuilt on demand (a scan over every version)."""


class ResolveCache:
    """``GET /models/{name}/aliases/{alias}`` bodies by (model, alias), as current as the database."""

    def __init__(self, engine: Engine, store: RegistryStore) -> None:
        self.engine = engine
        self.store = store
        self._connection: Any = None  # a DBAPI connection of its own, outside the pool (see _connect)
        self._counter: int | None = None
        self._bodies: dict[Hashable, bytes] = {}
        self._bytes = 0
        # callers are the event loop's thread; the lock keeps the connection single-user if that changes
        self._lock = threading.Lock()

    def resolve_json(self, name: str, alias: str) -> bytes:
        """The resolved alias as JSON; :class:`~services.registry.errors.NotFound` as ``store.resolve_alias``."""
        with self._lock:
            counter = self._read_counter()  # before the row: bodies read after it are at least this new
            if counter != self._counter:
                self._bodies.clear()
                self._bytes = 0
                self._counter = counter
            body = self._bodies.get((name, alias))
            if body is None:
                resolved = self.store.resolve_alias(name, alias)
                body = resolved.__pydantic_serializer__.to_json(resolved)
                self._bodies[(name, alias)] = body  # only aliases that exist: bounded by the database
            return body

    def cached_json(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """Any read's answer by ``key``, kept like resolve's: served only while no change was committed since
        it was built (get-version, searches, MLflow's reads); ``build`` raises for what does not exist.

        ``build`` runs outside the lock (a search takes milliseconds; resolves must not wait for it); its
        body is kept only if no change was committed meanwhile.
        """
        with self._lock:
            counter = self._current()
            body = self._bodies.get(key)
        if body is not None:
            return body
        body = build()  # read after the counter: at least as new as ``counter``
        with self._lock:
            if self._counter == counter:
                if len(self._bodies) >= MAX_BODIES or self._bytes + len(body) > MAX_BYTES:
                    self._bodies.clear()  # a scan over every version: start again rather than grow
                    self._bytes = 0
                self._bodies[key] = body
                self._bytes += len(body)
        return body

    def read_value(self, statement: ClauseElement, params: dict[str, Any]) -> Any:
        """The first column of ``statement``'s first row (None without one), read on this cache's own
        connection: a primary-key read without the engine's per-statement cost (pool checkout, result
        objects), for the fast path's reads (get-version)."""
        compiled = compiled_select(self.engine.dialect, statement)
        arguments = driver_arguments(compiled, params)
        with self._lock:
            if self._connection is None:  # the caller read the counter first: connected unless it failed
                self._read_counter()
            try:
                cursor = self._connection.cursor()
                try:
                    cursor.execute(compiled.string, arguments)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except self.engine.dialect.loaded_dbapi.Error as exc:  # the engine's path reports it precisely
                self._disconnect()
                raise Unavailable("the registry database could not answer", field="database") from exc
        return None if row is None else row[0]

    def peek(self, key: Hashable) -> bytes | None:
        """The cached answer by ``key`` if it is still current, without building one."""
        with self._lock:
            self._current()
            return self._bodies.get(key)

    def _current(self) -> int:
        """The change counter now; the cached bodies are dropped if it moved (call with the lock held)."""
        counter = self._read_counter()
        if counter != self._counter:
            self._bodies.clear()
            self._bytes = 0
            self._counter = counter
        return counter

    def close(self) -> None:
        with self._lock:
            self._disconnect()
            self._bodies.clear()
            self._bytes = 0
            self._counter = None

    def _read_counter(self) -> int:
        try:
            return self._read_counter_once()
        except self.engine.dialect.loaded_dbapi.Error:
            self._disconnect()  # e.g. the database restarted: once more, on a new connection
        try:
            return self._read_counter_once()
        except (self.engine.dialect.loaded_dbapi.Error, SQLAlchemyError) as exc:
            self._disconnect()
            raise Unavailable(
                "the registry database is unavailable; retry shortly", field="database"
            ) from exc

    def _read_counter_once(self) -> int:
        if self._connection is None:
            self._connection = self._connect()
        cursor = self._connection.cursor()
        try:
            cursor.execute(_READ_COUNTER)
            row = cursor.fetchone()
        finally:
            cursor.close()
        if self.engine.dialect.name not in ("sqlite", "postgresql"):
            self._connection.rollback()  # end the read so that the next one sees newer commits
        if row is None:
            raise RuntimeError("change_counter has no row: the registry database was not migrated")
        return int(row[0])

    def _connect(self) -> Any:
        """A connection detached from the pool: it reads in autocommit (each read sees the latest commits),
        which must never leak into a pooled connection that runs write transactions."""
        connection: Any = self.engine.raw_connection()
        if self.engine.dialect.name == "postgresql":
            connection.rollback()  # autocommit can only be switched on outside a transaction
            connection.driver_connection.autocommit = True
        connection.detach()
        # SQLite connections already run without an implicit transaction (db._tune_sqlite)
        return connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(self.engine.dialect.loaded_dbapi.Error):  # already broken
                connection.close()
