"""Just enough SQL lexing to route an HTTP request: the statement's kind, its FORMAT, where inline data starts.

The engine parses the SQL; the server only needs to find the boundary between an INSERT statement and the
data that follows it in the same body (as the ClickHouse server does), without reading the data as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_WORD_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") | frozenset(
    range(0x80, 0x100)
)
_WORD = _WORD_START | frozenset(b"0123456789$")
_SPACE = frozenset(b" \t\r\n\f\v")
_QUOTES = frozenset(b"'\"`")

#: Statements that return rows; everything else answers with an empty body.
RESULT_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES"}
)


class NeedMore(Exception):
    """The buffer ends inside a token: read more of the body before deciding."""


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    depth: int
    word: str | None  # upper-cased keyword/identifier text, None for other tokens


@dataclass(frozen=True)
class InsertData:
    """An INSERT whose rows follow the statement inline: ``statement`` goes to the engine, rows start at ``offset``."""

    statement: str
    fmt: str
    offset: int


def _skip_quoted(buf: bytes | bytearray, i: int, final: bool) -> int:
    quote = buf[i]
    i += 1
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == 0x5C:  # backslash escapes the next byte
            i += 2
            continue
        if c == quote:
            if i + 1 < n and buf[i + 1] == quote:  # doubled quote
                i += 2
                continue
            if i + 1 == n and not final:
                raise NeedMore
            return i + 1
        i += 1
    if final:
        return n
    raise NeedMore


def tokens(buf: bytes | bytearray, final: bool = True, start: int = 0) -> Iterator[Token]:
    """Yield the tokens of ``buf`` (comments and blanks skipped); raise NeedMore when a token may continue."""
    i, n, depth = start, len(buf), 0
    while i < n:
        c = buf[i]
        if c in _SPACE:
            i += 1
        elif buf[i : i + 2] in (b"--", b"# ", b"#!"):  # line comment
            end = buf.find(b"\n", i)
            if end < 0:
                if not final:
                    raise NeedMore
                return
            i = end + 1
        elif c == 0x2F and buf[i + 1 : i + 2] == b"*":
            end = buf.find(b"*/", i + 2)
            if end < 0:
                if not final:
                    raise NeedMore
                return
            i = end + 2
        elif c in _QUOTES:
            end = _skip_quoted(buf, i, final)
            yield Token(i, end, depth, None)
            i = end
        elif c in _WORD_START:
            j = i + 1
            while j < n and buf[j] in _WORD:
                j += 1
            if j == n and not final:
                raise NeedMore
            yield Token(i, j, depth, bytes(buf[i:j]).decode("utf-8", "replace").upper())
            i = j
        else:
            if c == 0x28 or c == 0x5B:  # ( [
                depth += 1
            elif (c == 0x29 or c == 0x5D) and depth > 0:
                depth -= 1
            if (c == 0x2D or c == 0x2F) and i + 1 == n and not final:
                raise NeedMore  # may start a comment
            yield Token(i, i + 1, depth, None)
            i += 1


def first_keyword(sql: bytes | bytearray | str) -> str:
    """The statement's first keyword, upper-cased (``""`` when there is none)."""
    buf = sql.encode() if isinstance(sql, str) else sql
    for tok in tokens(buf):
        if tok.word is not None:
            return tok.word
        if buf[tok.start] != 0x28:  # "(SELECT ...)" still starts a SELECT
            return ""
    return ""


def output_format(sql: bytes | bytearray | str) -> str | None:
    """The format named by the statement's top-level ``FORMAT`` clause, if any."""
    buf = sql.encode() if isinstance(sql, str) else sql
    found = None
    previous: Token | None = None
    for tok in tokens(buf):
        if (
            previous is not None
            and previous.word == "FORMAT"
            and previous.depth == 0
            and tok.word is not None
        ):
            found = bytes(buf[tok.start : tok.end]).decode()
        previous = tok
    return found


def _data_start(buf: bytes | bytearray, i: int) -> int:
    """Like ClickHouse: inline data starts after blanks and at most one line break after the format name."""
    n = len(buf)
    while i < n and buf[i] in b" \t\f":
        i += 1
    if i < n and buf[i] == 0x0D:
        i += 1
    if i < n and buf[i] == 0x0A:
        i += 1
    return i


def split_insert(buf: bytes | bytearray, final: bool) -> InsertData | None:
    """Find where an ``INSERT ... FORMAT x`` / ``INSERT ... VALUES`` statement ends and its data begins.

    Returns None when the buffer does not hold such an INSERT (another statement, ``INSERT ... SELECT``),
    raises NeedMore when ``final`` is false and more bytes are needed to decide.
    """
    it = tokens(buf, final)
    first = next(it, None)
    if first is None:
        if final:
            return None
        raise NeedMore
    if first.word != "INSERT":
        return None
    previous: Token | None = None
    for tok in it:
        if tok.depth == 0 and tok.word in ("SELECT", "WITH", "FROM"):
            return None
        if tok.depth == 0 and tok.word == "VALUES" and buf[tok.start - 1 : tok.start] != b".":
            statement = bytes(buf[first.start : tok.start]).decode()
            return InsertData(statement.rstrip(), "Values", tok.end)
        if (
            previous is not None
            and previous.word == "FORMAT"
            and previous.depth == 0
            and tok.word is not None
        ):
            if tok.end == len(buf) and not final:
                raise NeedMore
            statement = bytes(buf[first.start : previous.start]).decode().rstrip()
            fmt = bytes(buf[tok.start : tok.end]).decode()
            return InsertData(statement, fmt, _data_start(buf, tok.end))
        previous = tok
    if final:
        return None
    raise NeedMore
