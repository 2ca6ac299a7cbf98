"""The ClickHouse HTTP interface over aiohttp: request shapes, compression, headers and errors as a server sends.

A request's SQL is the URL's ``query`` plus the body. An INSERT followed by inline rows (``FORMAT x`` or
``VALUES``) is split where the rows begin; the rows are decompressed while they arrive and handed to the engine
as received chunks, never parsed or joined in Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import AsyncGenerator, Sequence

from aiohttp import BodyPartReader, web

from driftloop.clickhouse_server import auth, compression, protocol
from driftloop.clickhouse_server.engine import Engine, QueryContext, Summary
from driftloop.clickhouse_server.errors import (
    BAD_ARGUMENTS,
    CANNOT_DECOMPRESS,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    READONLY,
    SYNTAX_ERROR,
    UNKNOWN_EXCEPTION,
    UNKNOWN_ROLE,
    ClickHouseError,
)
from driftloop.clickhouse_server.sessions import Sessions, refuse_stateful
from driftloop.clickhouse_server.sql import (
    InsertData,
    NeedMore,
    first_keyword,
    input_calls,
    output_format,
    session_change,
    statement_count,
)
from driftloop.clickhouse_server.sql import split_insert as _split_insert

log = logging.getLogger(__name__)

#: Response chunks at least this big are compressed on a worker thread, keeping the event loop responsive.
OFFLOAD_BYTES = 256 * 1024
#: How much of a body may precede an INSERT's data before we give up looking for its FORMAT clause.
MAX_HEADER_BYTES = 1024 * 1024
#: The most rows an ``INSERT ... SELECT ... FROM input()`` may send: they are held whole before the engine reads them.
INPUT_MAX_BYTES = 64 * 1024 * 1024
#: Statements chDB can stream (the others run to completion: SHOW, DESCRIBE, EXISTS, ...).
STREAMED_KEYWORDS = frozenset({"SELECT", "WITH"})
#: What a GET may not run: like the ClickHouse server, GET is read-only and changes need POST.
MODIFYING_KEYWORDS = frozenset(
    [
        "INSERT",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "RENAME",
        "OPTIMIZE",
        "SYSTEM",
        "ATTACH",
        "DETACH",
        "DELETE",
        "UPDATE",
        "GRANT",
        "REVOKE",
        "KILL",
        "EXCHANGE",
        "UNDROP",
        "BACKUP",
        "RESTORE",
        "MOVE",
        "REPLACE",
    ]
)
NATIVE_COMPRESSION_REFUSED = (
    "compress=1 and decompress=1 (ClickHouse's native compressed blocks) are not supported by the embedded "
    "ClickHouse server; use HTTP compression instead: Content-Encoding for the request body, Accept-Encoding "
    "(lz4, zstd, gzip, deflate) for the response. (NOT_IMPLEMENTED)"
)
GET_IS_READONLY = (
    "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
    "You should use method POST for modifying queries. (READONLY)"
)


class ClickHouseHttp:
    """Turns HTTP requests into engine calls and engine results into ClickHouse-shaped responses."""

    def __init__(
        self, engine: Engine, credentials: auth.Credentials | None = None, display_name: str | None = None
    ) -> None:
        self.engine = engine
        self.credentials = credentials or auth.Credentials("default", "")
        self.display_name = display_name or socket.gethostname()
        self.sessions = Sessions()
        self.stopping = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Let running requests finish, bodies included (aiohttp's own shutdown stops reading them).

        Call after the listener is closed; requests still arriving on open connections are served and their
        connections closed. Returns False when requests were still running after ``timeout`` seconds.
        """
        self.stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            response = await self._handle(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        if self.stopping and not response.prepared:
            response.force_close()
        return response

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if path in ("/ping", "/replicas_status"):
            return web.Response(text="Ok.\n")
        if path not in ("", "/query"):
            return web.Response(status=404, text=f"There is no handle {request.path}\n")
        opts = protocol.QueryOptions()
        try:
            opts = protocol.parse_options([*protocol.header_options(request.headers), *request.query.items()])
            if request.method in ("GET", "HEAD") and not opts.query:
                return web.Response(text="Ok.\n")
            user = self._authenticate(request)
            if opts.native_compression:
                raise ClickHouseError(NOT_IMPLEMENTED, NATIVE_COMPRESSION_REFUSED)
            if opts.role:  # the one user has no roles: ClickHouse refuses a role it does not know
                raise ClickHouseError(
                    UNKNOWN_ROLE, f"There is no role `{opts.role}` in user directories. (UNKNOWN_ROLE)"
                )
            if opts.session_id:
                self.sessions.use(user, opts.session_id, opts.session_timeout, opts.session_check)
            try:
                if request.method in ("GET", "HEAD"):
                    if first_keyword(opts.query) in MODIFYING_KEYWORDS:
                        raise ClickHouseError(READONLY, GET_IS_READONLY)
                    return await self._run_sql(request, opts, opts.query)
                if request.method != "POST":
                    raise ClickHouseError(BAD_ARGUMENTS, f"HTTP method {request.method} is not supported")
                return await self._post(request, opts)
            finally:
                if opts.session_id and opts.close_session:
                    self.sessions.close(user, opts.session_id)
        except ClickHouseError as exc:
            return self._error(opts, exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug here must not take the server down with it
            log.exception("request failed")
            return self._error(opts, ClickHouseError(UNKNOWN_EXCEPTION, f"{type(exc).__name__}: {exc}"))

    def _authenticate(self, request: web.BaseRequest) -> str:
        """The request's user once its credentials match the configured ones (code 516 otherwise)."""
        given = auth.presented(request.headers, request.query)
        auth.check(self.credentials, given)
        return given.user

    # -- requests -----------------------------------------------------------------------------------------

    async def _post(self, request: web.BaseRequest, opts: protocol.QueryOptions) -> web.StreamResponse:
        if request.content_type == "multipart/form-data":
            return await self._post_form(request)
        try:
            decoder = compression.decoder(request.headers.get("Content-Encoding"))
        except compression.UnsupportedEncoding as exc:
            raise ClickHouseError(BAD_ARGUMENTS, str(exc)) from None
        body = _decoded(request, decoder)
        head = bytearray(opts.query.encode() + b"\n") if opts.query else bytearray()
        insert: InsertData | None = None
        async for part in body:
            head += part
            try:
                insert = _split_insert(head, final=False)
                break
            except NeedMore:
                if len(head) > MAX_HEADER_BYTES and first_keyword(head[:64]) == "INSERT":
                    raise ClickHouseError(
                        62, "Syntax error: no FORMAT or VALUES in the first 1 MiB of an INSERT"
                    ) from None
        else:
            insert = _split_insert(head, final=True)
            if insert is None:
                sql = head.decode("utf-8", "replace")
                return await self._run_sql(request, opts, sql)
        if insert is None:  # not an INSERT with inline data: the whole body is SQL
            async for part in body:
                head += part
            return await self._run_sql(request, opts, head.decode("utf-8", "replace"))
        first = bytes(head[insert.offset :])
        del head
        if insert.select:
            return await self._insert_select(request, opts, insert, _prepend(first, body))
        summary = await self.engine.insert(
            _context(opts), insert.statement, insert.fmt, _prepend(first, body)
        )
        return web.Response(body=b"", headers=self._headers(opts, opts.default_format, summary))

    async def _insert_select(
        self,
        request: web.BaseRequest,
        opts: protocol.QueryOptions,
        insert: InsertData,
        body: AsyncGenerator[bytes, None],
    ) -> web.StreamResponse:
        """``INSERT ... SELECT ... FROM input('structure') FORMAT x`` with rows: the rows become a temporary table
        that the statement reads in place of ``input()`` (chDB's streaming insert does not take a SELECT)."""
        calls, other = input_calls(insert.statement)
        if other or len(calls) > 1:
            raise ClickHouseError(
                NOT_IMPLEMENTED,
                "the embedded ClickHouse server supports one input('structure') per INSERT, with the structure "
                "as a string literal. (NOT_IMPLEMENTED)",
            )
        data = bytearray()
        async for chunk in body:
            data += chunk
            if len(data) > INPUT_MAX_BYTES:
                raise ClickHouseError(
                    QUERY_IS_TOO_LARGE,
                    f"the rows for input() are over {INPUT_MAX_BYTES >> 20} MiB; send bigger bodies as "
                    "INSERT INTO t FORMAT x, which streams. (QUERY_IS_TOO_LARGE)",
                )
        if not calls:
            if data.strip():
                raise ClickHouseError(
                    BAD_ARGUMENTS,
                    "rows were sent after INSERT ... SELECT ... FORMAT, but the SELECT does not read them with "
                    "input('structure'): they would be lost. (BAD_ARGUMENTS)",
                )
            return await self._run_sql(request, opts, insert.statement)
        call = calls[0]
        name = f"_input_{secrets.token_hex(8)}"
        sql = insert.statement[: call.start] + name + insert.statement[call.end :]
        table = protocol.ExternalTable(name, call.structure, insert.fmt, bytes(data))
        del data
        _, summary = await self.engine.execute(_context(opts), sql, opts.default_format, [table])
        return web.Response(body=b"", headers=self._headers(opts, opts.default_format, summary))

    async def _post_form(self, request: web.BaseRequest) -> web.StreamResponse:
        """A form: the query and ``param_*`` values as fields (how clickhouse-connect sends large parameters)
        and files readable as temporary tables (its ``external_data``)."""
        fields = [*protocol.header_options(request.headers), *request.query.items()]
        files: list[tuple[str, bytes]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise ClickHouseError(BAD_ARGUMENTS, "a form part without a name (or a nested form) was sent")
            data = bytes(await part.read(decode=True))
            if part.filename:
                files.append((part.name, data))
            else:
                fields.append((part.name, data.decode()))
        try:
            tables, fields = protocol.external_tables(files, fields)
        except ValueError as exc:
            raise ClickHouseError(BAD_ARGUMENTS, str(exc)) from None
        opts = protocol.parse_options(fields)
        if opts.native_compression:
            raise ClickHouseError(NOT_IMPLEMENTED, NATIVE_COMPRESSION_REFUSED)
        return await self._run_sql(request, opts, opts.query, tables)

    async def _run_sql(
        self,
        request: web.BaseRequest,
        opts: protocol.QueryOptions,
        sql: str,
        tables: Sequence[protocol.ExternalTable] = (),
    ) -> web.StreamResponse:
        if statement_count(sql) > 1:
            raise ClickHouseError(SYNTAX_ERROR, "Multi-statements are not allowed. (SYNTAX_ERROR)")
        refuse_stateful(opts.session_id, session_change(sql))
        fmt = output_format(sql) or opts.default_format
        ctx = _context(opts)
        keyword = first_keyword(sql)
        if (
            keyword not in STREAMED_KEYWORDS
            or tables
            or opts.wait_end_of_query
            or fmt not in protocol.STREAMABLE_FORMATS
        ):
            body, summary = await self.engine.execute(ctx, sql, opts.default_format, tables)
            return await self._send(request, opts, fmt, summary, body)
        stream = self.engine.stream(ctx, sql, opts.default_format)
        chunks = stream.chunks()
        first = await anext(chunks, b"")  # errors before the first row still get a proper status
        return await self._send(request, opts, fmt, stream.summary, _prepend(first, chunks))

    # -- responses ----------------------------------------------------------------------------------------

    def _headers(self, opts: protocol.QueryOptions, fmt: str, summary: Summary | None) -> dict[str, str]:
        headers = {
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Query-Id": opts.query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "Content-Type": protocol.content_type(fmt),
        }
        if opts.cors:
            headers["Access-Control-Allow-Origin"] = "*"
        if summary is not None:
            headers["X-ClickHouse-Summary"] = json.dumps(summary.header(), separators=(",", ":"))
        return headers

    async def _send(
        self,
        request: web.BaseRequest,
        opts: protocol.QueryOptions,
        fmt: str,
        summary: Summary,
        chunks: AsyncGenerator[bytes, None] | bytes,
    ) -> web.StreamResponse:
        """Answer with ``chunks`` (a whole body, or a stream sent as it comes), compressed as negotiated."""
        headers = self._headers(opts, fmt, summary)
        encoding = compression.choose_encoding(request.headers.get("Accept-Encoding"))
        encoder = compression.encoder(encoding) if encoding and opts.compress_response else None
        if encoder is not None and encoding is not None:
            headers["Content-Encoding"] = encoding
        if isinstance(chunks, bytes):  # one piece: one write, with Content-Length
            body = await self._compress(encoder, chunks, final=True) if encoder is not None else chunks
            return web.Response(body=body, headers=headers)
        try:
            return await self._stream_out(request, encoder, headers, chunks)
        finally:
            await chunks.aclose()  # stops the engine at once when the client left early

    async def _stream_out(
        self,
        request: web.BaseRequest,
        encoder: compression.Encoder | None,
        headers: dict[str, str],
        chunks: AsyncGenerator[bytes, None],
    ) -> web.StreamResponse:
        tag = secrets.token_hex(8)
        response = web.StreamResponse(headers={**headers, "X-ClickHouse-Exception-Tag": tag})
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        try:
            async for chunk in chunks:
                if encoder is not None:
                    chunk = await self._compress(encoder, chunk)
                if chunk:
                    await response.write(chunk)
        except ConnectionResetError:
            log.debug("client left before the end of its result")
            return response
        except ClickHouseError as exc:
            # Headers are gone: append the error in the tagged block ClickHouse 25.11+ uses (clickhouse-connect
            # raises it), then cut the connection so clients that do not know the block still fail.
            block = exception_block(exc.body(self.engine.version), tag)
            if encoder is not None:
                block = encoder.compress(block) + encoder.flush()
            with contextlib.suppress(ConnectionResetError):
                await response.write(block)
            if request.transport is not None:
                request.transport.close()
            return response
        if encoder is not None:
            await response.write(encoder.flush())
        await response.write_eof()
        return response

    @staticmethod
    async def _compress(encoder: compression.Encoder, data: bytes, final: bool = False) -> bytes:
        def work() -> bytes:
            out = encoder.compress(data) if data else b""
            return out + encoder.flush() if final else out

        if len(data) >= OFFLOAD_BYTES:  # keep the event loop free for other requests
            return await asyncio.get_running_loop().run_in_executor(None, work)
        return work()

    def _error(self, opts: protocol.QueryOptions, exc: ClickHouseError) -> web.Response:
        headers = self._headers(opts, "TabSeparated", None)
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        return web.Response(status=exc.http_status, body=exc.body(self.engine.version), headers=headers)


def exception_block(message: bytes, tag: str) -> bytes:
    """An error sent after rows: ``__exception__``, the tag, the text, its length, framed as ClickHouse does."""
    text = message.rstrip(b"\n")
    marker = tag.encode()
    return b"__exception__\r\n%s\r\n%s\n%d %s\r\n__exception__\r\n" % (marker, text, len(text), marker)


def _context(opts: protocol.QueryOptions) -> QueryContext:
    return QueryContext(database=opts.database, settings=opts.settings, params=opts.params)


async def _decoded(request: web.BaseRequest, decoder: compression.Decoder) -> AsyncGenerator[bytes, None]:
    """The request body as it arrives (chunked or not), decompressed piece by piece."""
    try:
        async for data in request.content.iter_any():
            for part in decoder.feed(data):
                yield part
        decoder.finish()
    except compression.DECODE_ERRORS as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress the request body: {exc}") from None


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


def make_server(
    engine: Engine, credentials: auth.Credentials | None = None
) -> tuple[web.Server, ClickHouseHttp]:
    """The aiohttp low-level server: ClickHouse-sized URLs, request bodies left compressed for us to decode."""
    http = ClickHouseHttp(engine, credentials)
    server = web.Server(
        http.handle,
        auto_decompress=False,
        max_line_size=1024 * 1024,
        max_field_size=64 * 1024,
        read_bufsize=1024 * 1024,
        keepalive_timeout=3600,  # long-lived clients idle between writes; never close under them
        access_log=None,  # one line per query would swamp the log
    )
    return server, http
