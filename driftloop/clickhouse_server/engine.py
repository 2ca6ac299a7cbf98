"""The chDB engine behind the server: a few persistent sessions over one data folder, one per engine thread.

chDB runs one statement at a time per session, but several sessions over the same folder run side by side
(they share one embedded engine), so an insert no longer queues behind a slow query, as on a real server.
Each engine thread owns one session for its whole life. The asyncio loop only waits for results, so pings and
request bodies keep flowing while queries run (chDB releases the GIL).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from driftloop.clickhouse_server.errors import UNKNOWN_EXCEPTION, ClickHouseError
from driftloop.clickhouse_server.protocol import ExternalTable
from driftloop.clickhouse_server.sql import session_change

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Result bytes a streaming query may hold in memory ahead of a slow client; the rest waits in a temp file.
STREAM_BUFFER_BYTES = 64 * 1024 * 1024
#: INSERT data up to this size is received whole before the engine starts on it, so a slow sender never
#: holds the engine; past it the rows stream into the engine as they arrive, keeping memory bounded.
INSERT_BUFFER_BYTES = 32 * 1024 * 1024
#: How far a streaming INSERT's sender may run ahead of the engine.
INSERT_INBOX_BYTES = 32 * 1024 * 1024
#: Statements that may run at once (one chDB session each); more queue for a free session.
DEFAULT_SESSIONS = 4


_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class QueryContext:
    """Where and how one request's statement runs: current database, settings and ``{name:Type}`` values."""

    database: str = "default"
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    """Counters for the X-ClickHouse-Summary header."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_ns: int = 0

    def add_result(self, result: Any) -> None:
        self.read_rows += result.storage_rows_read()
        self.read_bytes += result.storage_bytes_read()
        self.written_rows += result.rows_written()
        self.written_bytes += result.bytes_written()
        self.result_rows += result.rows_read()
        self.result_bytes += result.bytes_read()

    def header(self) -> dict[str, str]:
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows),
            "result_rows": str(self.result_rows),
            "result_bytes": str(self.result_bytes),
            "elapsed_ns": str(self.elapsed_ns),
        }


@dataclass(frozen=True)
class _Spilled:
    offset: int
    size: int


class _Channel:
    """Hands result chunks from the engine thread to the event loop without ever making the engine wait.

    Past ``budget`` bytes not yet sent, chunks go to a temporary file: a client that reads slowly (or not at
    all until its other queries are answered) costs disk, not memory, and never stalls the shared engine.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | _Spilled | BaseException | None] = asyncio.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._budget = budget
        self._spill: Any = None
        self._spill_end = 0
        self.closed = False

    def put(self, item: bytes | BaseException | None) -> bool:
        """Engine thread: queue a chunk (or the end/error); False once the reader has gone away."""
        with self._lock:
            if self.closed:
                return False
            queued: bytes | _Spilled | BaseException | None = item
            if isinstance(item, bytes):
                if self._pending + len(item) > self._budget:
                    if self._spill is None:
                        self._spill = tempfile.TemporaryFile(prefix="chdb-result-")  # noqa: SIM115 - closed in close()
                    os.pwrite(self._spill.fileno(), item, self._spill_end)
                    queued = _Spilled(self._spill_end, len(item))
                    self._spill_end += len(item)
                else:
                    self._pending += len(item)
        self._loop.call_soon_threadsafe(self._queue.put_nowait, queued)
        return True

    async def get(self) -> bytes | BaseException | None:
        item = await self._queue.get()
        if isinstance(item, _Spilled):
            return os.pread(self._spill.fileno(), item.size, item.offset)
        if isinstance(item, bytes):
            with self._lock:
                self._pending -= len(item)
        return item

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._spill is not None:
                self._spill.close()
                self._spill = None


class _Inbox:
    """Hands INSERT data from the event loop to the engine thread; the sender waits while the engine is behind."""

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int) -> None:
        self._loop = loop
        self._cond = threading.Condition()
        self._items: collections.deque[bytes | BaseException | None] = collections.deque()
        self._pending = 0
        self._budget = budget
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def close(self) -> None:
        """Event loop: the engine is done with this INSERT (finished or failed); drop whatever comes next."""
        self._closed = True
        self._room.set()

    async def put(self, item: bytes | BaseException | None) -> None:
        """Event loop: queue a chunk, or None for the end, or an exception that aborts the INSERT."""
        await self._room.wait()
        if self._closed:
            return
        with self._cond:
            self._items.append(item)
            if isinstance(item, bytes):
                self._pending += len(item)
                if self._pending > self._budget:
                    self._room.clear()
            self._cond.notify()

    def get(self) -> bytes | None:
        """Engine thread: the next chunk, None at the end; raises what the sender put."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.popleft()
            if isinstance(item, bytes):
                self._pending -= len(item)
                if self._pending <= self._budget:
                    self._loop.call_soon_threadsafe(self._room.set)
        if isinstance(item, BaseException):
            raise item
        return item

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.get()) is not None:
            yield item


class ResultStream:
    """A running query's output: iterate for chunks; ``summary`` is complete once iteration ends."""

    def __init__(self, channel: _Channel, done: asyncio.Future[Summary]) -> None:
        self._channel = channel
        self._done = done
        self.summary = Summary()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                item = await self._channel.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
            self.summary = await self._done
        finally:
            self._channel.close()


class _Session:
    """One chDB connection and what this server last set on it (database, URL settings).

    ``dirty`` means its state is unknown (a user's ``SET``, a temporary table, a ``SET`` that failed half
    way): the connection is replaced before it runs anything else, so nothing leaks into the next request.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.database: str | None = None  # the session's current database, None when unknown
        self.applied: dict[str, str] = {}  # URL settings now set on the session
        self.dirty = False


class Engine:
    """The server's chDB sessions over ``data_dir``; every coroutine here is safe to call concurrently."""

    def __init__(self, data_dir: Path, sessions: int = DEFAULT_SESSIONS) -> None:
        self.data_dir = data_dir
        self.version = ""
        self.timezone = "UTC"
        self._executor = ThreadPoolExecutor(max_workers=max(1, sessions), thread_name_prefix="chdb")
        self._local = threading.local()
        self._sessions: list[_Session] = []
        self._lock = threading.Lock()
        self._closed = True
        self._baseline: dict[str, str] = {}  # settings chDB itself starts with changed: what "default" means

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        conn = self._session().conn
        row = conn.query("SELECT version(), timezone()", "TabSeparated").bytes().decode()
        self.version, self.timezone = row.rstrip("\n").split("\t")
        changed = conn.query("SELECT name, value FROM system.settings WHERE changed", "TabSeparated")
        for line in changed.bytes().decode().splitlines():
            name, _, value = line.partition("\t")
            self._baseline[name] = value

    def _connect(self) -> _Session:
        import chdb  # heavy (the whole engine): loaded only by the server process

        with self._lock:
            if self._closed:
                raise ClickHouseError(
                    210, "Code: 210. DB::Exception: the server is shutting down. (NETWORK_ERROR)"
                )
            session = _Session(chdb.connect(str(self.data_dir)))
            self._sessions.append(session)
        return session

    def _session(self) -> _Session:
        """This engine thread's session, connected on first use (the first one starts the embedded engine).

        A session left in an unknown state is replaced by a fresh connection (about 1.5 ms): what one request
        did to it can never reach the next one.
        """
        session: _Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._connect()
        elif session.dirty:
            fresh = self._connect()  # opened before the old one closes: the engine stays up
            with self._lock:
                self._sessions.remove(session)
            session.conn.close()
            session = self._local.session = fresh
        return session

    async def close(self) -> None:
        """Finish queued work, then close every session so every part is on disk."""
        await asyncio.to_thread(self._executor.shutdown, True)
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in reversed(sessions):  # the first one, which started the engine, closes last
            session.conn.close()

    # -- engine thread ------------------------------------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ClickHouseError(
                210, "Code: 210. DB::Exception: the server is shutting down. (NETWORK_ERROR)"
            )
        try:
            return fn(*args)
        except ClickHouseError:
            raise
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    def _reset(self, name: str) -> str:
        """The SET clause that puts ``name`` back to what a new request starts with."""
        value = self._baseline.get(name)
        return f"{name} = DEFAULT" if value is None else f"{name} = {_quote(value)}"

    def _prepare(self, ctx: QueryContext) -> _Session:
        """This thread's session, made to match the request: its database, and exactly its URL settings on top
        of the server defaults (whatever an earlier request set is put back first)."""
        for name in ctx.settings:
            if not _SETTING_NAME.fullmatch(name):
                raise ClickHouseError(
                    115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)"
                )
        session = self._session()
        if session.applied != ctx.settings and session.applied.get("readonly", "0") != "0":
            session.dirty = True  # readonly forbids any SET, even back to the default: start afresh
            session = self._session()
        if session.database != ctx.database:
            session.database = None
            self._call(session.conn.query, f"USE {_ident(ctx.database)}", "TabSeparated")
            session.database = ctx.database
        applied = session.applied
        if applied == ctx.settings:
            return session
        changes = [self._reset(name) for name in applied if name not in ctx.settings]
        # readonly last, so that it never stops the request's other settings from being applied
        wanted = sorted(ctx.settings.items(), key=lambda item: item[0] == "readonly")
        changes += [f"{k} = {_quote(v)}" for k, v in wanted if applied.get(k) != v]
        session.dirty = True  # a SET that fails may have applied part of its changes
        self._call(session.conn.query, "SET " + ", ".join(changes), "TabSeparated")
        session.dirty = False
        session.applied = dict(ctx.settings)
        return session

    @staticmethod
    def _forget_session_state(session: _Session, sql: str) -> None:
        """A user's USE, SET or temporary table changes the session: undo it before the next request, as the
        ClickHouse server does for a request without ``session_id``."""
        change = session_change(sql)
        if change == "USE":
            session.database = None
        elif change:
            session.dirty = True

    def _execute(
        self, ctx: QueryContext, sql: str, fmt: str, tables: Sequence[ExternalTable] = ()
    ) -> tuple[bytes, Summary]:
        started = time.perf_counter_ns()
        session = self._prepare(ctx)
        created = []
        try:
            for table in tables:  # temporary tables belong to this session: no other request sees them
                self._call(
                    session.conn.query, f"CREATE TEMPORARY TABLE {_ident(table.name)} ({table.structure})"
                )
                created.append(table.name)
                self._insert_all(session, f"INSERT INTO {_ident(table.name)}", table.fmt, [table.data])
            result = self._call(session.conn.query, sql, fmt, ctx.params)
        finally:
            self._forget_session_state(session, sql)
            for name in created:
                try:
                    self._call(session.conn.query, f"DROP TEMPORARY TABLE IF EXISTS {_ident(name)}")
                except ClickHouseError:
                    session.dirty = True  # the table must not outlive the request: drop the connection
        summary = Summary(elapsed_ns=time.perf_counter_ns() - started)
        summary.add_result(result)
        return result.bytes(), summary

    def _stream(self, ctx: QueryContext, sql: str, fmt: str, channel: _Channel) -> Summary:
        started = time.perf_counter_ns()
        summary = Summary()
        try:
            session = self._prepare(ctx)
            stream = self._call(session.conn.send_query, sql, fmt, ctx.params)
            try:
                while True:
                    chunk = self._call(stream.fetch)
                    if chunk is None:
                        break
                    summary.add_result(chunk)
                    if not channel.put(chunk.bytes()):
                        break  # the client went away
            finally:
                stream.close()
        except BaseException as exc:
            channel.put(exc)
            raise
        summary.elapsed_ns = time.perf_counter_ns() - started
        channel.put(None)
        return summary

    def _insert_all(self, session: _Session, statement: str, fmt: str, chunks: Iterable[bytes]) -> Any:
        inserter = self._call(session.conn.send_insert, statement, fmt)
        try:
            for chunk in chunks:
                self._call(inserter.append, chunk)
            return self._call(inserter.finish)
        finally:
            inserter.close()  # no-op after finish; cancels the INSERT after an error

    def _insert(self, ctx: QueryContext, statement: str, fmt: str, chunks: Iterable[bytes]) -> Summary:
        started = time.perf_counter_ns()
        session = self._prepare(ctx)
        result = self._insert_all(session, statement, fmt, chunks)
        return Summary(
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            elapsed_ns=time.perf_counter_ns() - started,
        )

    # -- event loop ---------------------------------------------------------------------------------------

    async def execute(
        self, ctx: QueryContext, sql: str, fmt: str, tables: Sequence[ExternalTable] = ()
    ) -> tuple[bytes, Summary]:
        """Run a statement to completion, with ``tables`` as temporary tables; returns its output in ``fmt``."""
        return await self._run(self._execute, ctx, sql, fmt, tables)

    def stream(self, ctx: QueryContext, sql: str, fmt: str) -> ResultStream:
        """Start a query whose output (a format that concatenates per block) is read chunk by chunk."""
        loop = asyncio.get_running_loop()
        channel = _Channel(loop, STREAM_BUFFER_BYTES)
        done = asyncio.ensure_future(self._run(self._stream, ctx, sql, fmt, channel))
        done.add_done_callback(
            lambda f: f.cancelled() or f.exception()
        )  # errors reach the reader via channel
        return ResultStream(channel, done)

    async def insert(
        self, ctx: QueryContext, statement: str, fmt: str, chunks: AsyncIterator[bytes]
    ) -> Summary:
        """Insert rows in ``fmt`` arriving as byte chunks (split anywhere) with ``statement`` (no FORMAT clause).

        Bodies up to INSERT_BUFFER_BYTES are received whole first, larger ones stream into the engine.
        """
        buffered: list[bytes] = []
        size = 0
        async for chunk in chunks:
            buffered.append(chunk)
            size += len(chunk)
            if size > INSERT_BUFFER_BYTES:
                break
        else:
            return await self._run(self._insert, ctx, statement, fmt, buffered)
        inbox = _Inbox(asyncio.get_running_loop(), INSERT_INBOX_BYTES)
        for chunk in buffered:
            await inbox.put(chunk)
        del buffered
        job = asyncio.ensure_future(self._run(self._insert, ctx, statement, fmt, inbox))
        job.add_done_callback(lambda _: inbox.close())
        try:
            async for chunk in chunks:
                if job.done():
                    break  # the engine rejected the data: its error is the answer
                await inbox.put(chunk)
        except BaseException as exc:
            await inbox.put(ClickHouseError(UNKNOWN_EXCEPTION, f"the INSERT body could not be read: {exc}"))
            with contextlib.suppress(Exception):
                await job
            raise
        await inbox.put(None)
        return await job
