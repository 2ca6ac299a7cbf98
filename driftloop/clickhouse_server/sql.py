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
    select: bool = False  # INSERT ... SELECT ... FORMAT x: the rows are for the SELECT's input() to read


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


def session_change(sql: bytes | bytearray | str) -> str:
    """``"SET"``, ``"USE"`` or ``"CREATE TEMPORARY"`` when the statement changes the session it runs on (what
    ClickHouse keeps in a named session and forgets with the request otherwise), ``""`` for anything else."""
    buf = sql.encode() if isinstance(sql, str) else sql
    words: list[str] = []
    for tok in tokens(buf):
        if tok.word is None or len(words) == 4:
            break
        words.append(tok.word)
    if not words:
        return ""
    if words[0] in ("SET", "USE"):
        return words[0]
    if words[0] == "CREATE" and ("TEMPORARY" in words[1:2] or words[1:4] == ["OR", "REPLACE", "TEMPORARY"]):
        return "CREATE TEMPORARY"
    return ""


def statement_count(sql: bytes | bytearray | str) -> int:
    """How many statements ``sql`` holds: top-level ``;`` separate them, a trailing one ends the last."""
    buf = sql.encode() if isinstance(sql, str) else sql
    count, pending = 0, False
    for tok in tokens(buf):
        if tok.depth == 0 and tok.word is None and buf[tok.start] == 0x3B:  # ;
            count += pending
            pending = False
        else:
            pending = True
    return count + pending


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

    ``INSERT ... SELECT ... FORMAT x`` (rows read by ``input()``) is found too, with ``select`` set. Returns None
    when the buffer does not hold such an INSERT (another statement, ``INSERT ... SELECT`` without FORMAT),
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
    select = False
    for tok in it:
        if tok.depth == 0 and not select and tok.word in ("SELECT", "WITH"):
            select = True
        if tok.depth == 0 and not select and tok.word == "FROM":
            return None  # FROM INFILE: a client-side feature, the engine answers it
        if not select and tok.depth == 0 and tok.word == "VALUES" and buf[tok.start - 1 : tok.start] != b".":
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
            return InsertData(statement, fmt, _data_start(buf, tok.end), select)
        previous = tok
    if final:
        return None
    raise NeedMore


@dataclass(frozen=True)
class InputCall:
    """Where ``input('structure')`` sits in a statement, and the structure it names."""

    start: int
    end: int
    structure: str


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
            i += 2
        elif ch == "'" and body[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def input_calls(statement: str) -> tuple[list[InputCall], bool]:
    """The ``input('structure')`` calls of a statement, and whether it mentions ``input(`` in another form."""
    buf = statement.encode()
    toks = list(tokens(buf))
    calls: list[InputCall] = []
    other = False
    for i, tok in enumerate(toks):
        if tok.word != "INPUT" or i + 1 >= len(toks) or buf[toks[i + 1].start] != 0x28:
            continue
        if i > 0 and buf[toks[i - 1].start] == 0x2E:  # db.input is a table, not the function
            continue
        parts = toks[i + 1 : i + 4]
        if (
            len(parts) == 3
            and buf[parts[1].start] == 0x27
            and buf[parts[2].start] == 0x29
            and parts[1].word is None
        ):
            literal = buf[parts[1].start : parts[1].end].decode()
            calls.append(
                InputCall(
                    len(buf[: tok.start].decode()), len(buf[: parts[2].end].decode()), _unquote(literal)
                )
            )
        else:
            other = True
    return calls, other
