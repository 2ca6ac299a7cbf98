"""Typed columns (``domain/event_columns.py``) as one block of ClickHouse's Native format, for an INSERT.

Native is ClickHouse's own column layout, so the server copies the columns in instead of parsing text. Fixed
width columns are numpy buffers written as they are; strings carry a LEB128 length each (a column of codes
into a vocabulary, like feature names, is gathered from the encoded vocabulary with numpy). A column is
sent with its table type, except that ``LowCardinality(String)`` is sent as ``String``: the server converts
it (``input_format_native_allow_types_conversion``, on by default) and the worker need not build
dictionaries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from clickhouse_connect.driver.ctypes import data_conv

from services.monitor.domain.event_columns import Coded, Column, Columns, Nested, Nullable


def leb128(value: int) -> bytes:
    """An unsigned LEB128 integer (how Native writes lengths and counts).

    >>> leb128(5), leb128(300)
    (b'\\x05', b'\\xac\\x02')
    """
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sent_type(declared: str) -> str:
    """The type a column is sent as: its declared type, ``LowCardinality`` unwrapped."""
    if declared.startswith("LowCardinality(") and declared.endswith(")"):
        return declared[len("LowCardinality(") : -1]
    return declared


def native_block(columns: Columns, types: Sequence[tuple[str, str]]) -> bytes:
    """One Native block holding ``columns`` in the order and with the types of ``types`` (name, ClickHouse type).

    Raises ``UnicodeEncodeError`` for a string UTF-8 cannot encode (a lone surrogate).
    """
    rows = _rows(columns[types[0][0]])
    out = bytearray(leb128(len(types)) + leb128(rows))
    for name, declared in types:
        for text in (name, sent_type(declared)):
            raw = text.encode()
            out += leb128(len(raw)) + raw
        _write(columns[name], out)
    return bytes(out)


def _rows(column: Column) -> int:
    if isinstance(column, Coded):
        return len(column.codes)
    if isinstance(column, Nested):
        return len(column.offsets)
    if isinstance(column, Nullable):
        return len(column.values)
    return len(column)


def _write(column: Column | None, out: bytearray) -> None:
    if column is None:
        return
    if isinstance(column, np.ndarray):
        out += np.ascontiguousarray(column).astype(column.dtype.newbyteorder("<"), copy=False).tobytes()
    elif isinstance(column, Nullable):
        out += column.nulls.astype(np.uint8, copy=False).tobytes()
        out += column.values.astype("<f8", copy=False).tobytes()
    elif isinstance(column, Nested):
        out += column.offsets.astype("<u8", copy=False).tobytes()
        _write(column.keys, out)
        _write(column.values, out)
    elif isinstance(column, Coded):
        out += _gather(column)
    else:
        if data_conv.write_str_col(column, False, "utf-8", out):  # raises UnicodeEncodeError itself
            raise ValueError("a string column could not be encoded")


def _gather(column: Coded) -> bytes:
    """The coded strings, each with its length: a run of rows sharing one pattern of keys is the pattern's
    bytes repeated, anything else is gathered from the encoded vocabulary without a Python loop."""
    encoded = [leb128(len(raw)) + raw for raw in (name.encode() for name in column.vocab)]
    if not encoded or not len(column.codes):
        return b""
    sizes = np.array([len(e) for e in encoded], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    source = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    if column.runs is None:
        return _gathered(column.codes, source, sizes, starts)
    return b"".join(_gathered(pattern, source, sizes, starts) * times for pattern, times in column.runs)


def _gathered(codes: np.ndarray, source: np.ndarray, sizes: np.ndarray, starts: np.ndarray) -> bytes:
    taken = sizes[codes]
    ends = np.cumsum(taken)
    if not len(ends):
        return b""
    # byte k of the output comes from source[starts[code] + (k - where this value starts in the output)]
    shift = np.repeat(starts[codes] - (ends - taken), taken)
    return source[np.arange(int(ends[-1])) + shift].tobytes()
