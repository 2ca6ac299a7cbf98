"""The rows of ``predictions`` and ``labels`` as typed columns, built from a batch of decoded events. Pure.

The worker has already decoded every event against the contract (``intake.check_records``); these columns
are what the tables hold, so ClickHouse stores them as they come instead of parsing each event's JSON a
second time (``adapters/clickhouse/native.py`` writes them in ClickHouse's Native format). They give the
rows the intake views give for the same JSON (``tests/integration/test_monitor_event_columns.py``).

Features are split in bulk: events are grouped by their feature names (one model's events share them), and
each group's values go through numpy one feature at a time, so no Python runs per feature value when a
feature keeps one kind (number, text or null) across its group; only a feature that mixes kinds is looked
at value by value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa

from shared.wire import LabelWire, PredictionWire

NUMBER, TEXT, MISSING = 0, 1, 2
KINDS = {int: NUMBER, float: NUMBER, bool: NUMBER, str: TEXT, type(None): MISSING}
NUMBERS = frozenset((int, float, bool))
_HEAD = [
    attrgetter(name)
    for name in (
        "event_id", "model_name", "model_version", "prediction_id", "occurred_at", "prediction", "probabilities",
        "latency_ms",
    )
]  # fmt: skip
"""A prediction's fields other than its features, each read for a whole batch in one ``map``."""
_FEATURES = attrgetter("features")
_INT = attrgetter("int")


@dataclass(frozen=True)
class Coded:
    """A String column given as codes into a small vocabulary (feature names): encoded without per-value work."""

    vocab: list[str]
    codes: np.ndarray
    runs: list[tuple[np.ndarray, int]] | None = None
    """The same codes as runs of a pattern repeated (pattern, times), in order, when the builder knows them:
    rows that share their feature names repeat one pattern of keys, written once and copied."""


Strings = list[str] | Coded
"""A String column: the values, or codes into a vocabulary."""


@dataclass(frozen=True)
class Nested:
    """An ``Array`` (``values`` None) or ``Map`` column in ClickHouse's layout: row ``i`` holds the items from
    ``offsets[i-1]`` (0 for the first row) up to ``offsets[i]``."""

    offsets: np.ndarray
    keys: Strings
    values: np.ndarray | Strings | None = None


@dataclass(frozen=True)
class Nullable:
    """A ``Nullable(Float64)`` column: the values (0 where null) and a null map (1 where null)."""

    values: np.ndarray
    nulls: np.ndarray


Column = np.ndarray | list[str] | Coded | Nested | Nullable
Columns = dict[str, Column]


def prediction_columns(events: Sequence[PredictionWire], ingested_at_ms: int) -> Columns:
    """The ``predictions`` columns of ``events`` (every column of ``tables.PREDICTIONS``), rows in the order
    grouped by feature names (``feature_groups``), which callers need not know: a table has no row order.

    Raises ``OverflowError`` for a number a Float64 cannot hold (an integer past 1.8e308).

    >>> from datetime import UTC, datetime
    >>> e = PredictionWire(model_name="m", model_version="1", prediction_id="p", prediction=True,
    ...                    occurred_at=datetime(2030, 1, 1, tzinfo=UTC), features={"a": 2, "b": "x", "c": None})
    >>> cols = prediction_columns([e], 0)
    >>> cols["num_features"].values.tolist(), cols["missing_features"].offsets.tolist(), cols["prediction"]
    ([2.0], [1], ['1'])
    """
    features = list(map(_FEATURES, events))
    groups = _name_groups(features)
    if len(groups) > 1:
        order = list(chain.from_iterable(rows for _, rows in groups))
        events = list(map(events.__getitem__, order))
        features = list(map(features.__getitem__, order))
    num, cat, missing = _features(features, [(names, len(rows)) for names, rows in groups])
    n = len(events)
    ids, models, versions, pids, times, outputs, probas, latencies = (list(map(get, events)) for get in _HEAD)
    text, number = output_columns(outputs)
    return {
        "event_id": _uuids(list(map(_INT, ids))),
        "model_name": models,
        "model_version": versions,
        "prediction_id": pids,
        "occurred_at": milliseconds(times),
        "num_features": num,
        "cat_features": cat,
        "missing_features": missing,
        "prediction": text,
        "prediction_num": number,
        "probabilities": _probabilities(probas),
        "latency_ms": _nullable(np.array(latencies, dtype=np.float64)),
        "ingested_at": np.full(n, ingested_at_ms, dtype=np.int64),
    }


def label_columns(events: Sequence[LabelWire], ingested_at_ms: int) -> Columns:
    """The ``labels`` columns of ``events`` (every column of ``tables.LABELS``), in their order."""
    text, number = output_columns([e.label for e in events])
    return {
        "event_id": _uuids([e.event_id.int for e in events]),
        "model_name": [e.model_name for e in events],
        "prediction_id": [e.prediction_id for e in events],
        "label": text,
        "label_num": number,
        "occurred_at": milliseconds([e.occurred_at for e in events]),
        "ingested_at": np.full(len(events), ingested_at_ms, dtype=np.int64),
    }


def feature_groups(events: Sequence[PredictionWire]) -> list[list[int]]:
    """Event indexes grouped by feature names (first seen first), each group in batch order."""
    return [list(rows) for _, rows in _name_groups(list(map(_FEATURES, events)))]


def _name_groups(features: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], Sequence[int]]]:
    """Indexes grouped by their feature names in order, first seen first: checked in C alone when the whole
    batch shares them (one model's events do, and often every model's)."""
    if not features:
        return []
    names = tuple(features[0])
    if all(map(names.__eq__, map(tuple, features))):
        return [(names, range(len(features)))]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, f in enumerate(features):
        groups.setdefault(tuple(f), []).append(i)
    return list(groups.items())


class _Parts:
    """One kind's share (numbers, text or nulls) of every group's features, gathered group by group."""

    def __init__(self) -> None:
        self.counts: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.runs: list[tuple[np.ndarray, int]] = []
        self.values: list[Any] = []

    def same_in_every_row(self, pattern: np.ndarray, rows: int, values: Any) -> None:
        self.counts.append(np.full(rows, len(pattern), dtype=np.int64))
        self.codes.append(np.tile(pattern, rows))
        self.runs.append((pattern, rows))
        self.values.append(values)

    def masked(self, mask: np.ndarray, codes: np.ndarray, values: Any) -> None:
        self.counts.append(mask.sum(axis=1))
        taken = np.broadcast_to(codes, mask.shape)[mask]
        self.codes.append(taken)
        self.runs.append((taken, 1))
        self.values.append(values)

    def nested(self, vocab: list[str], values: np.ndarray | Strings | None) -> Nested:
        keys = Coded(vocab, _concat(self.codes, np.int64), [run for run in self.runs if len(run[0])])
        return Nested(_offsets(self.counts), keys, values)


def _features(
    features: list[dict[str, Any]], groups: list[tuple[tuple[str, ...], int]]
) -> tuple[Nested, Nested, Nested]:
    """Numeric features (booleans as 1/0), text features, and the names of null ones, per event, in order.

    ``features`` come grouped: each of ``groups`` (names, rows) is that many consecutive events with the same
    feature names in the same order, so a group is one matrix. A feature keeps one kind across its group as
    a rule: each feature's kinds are read as a set, and its numbers become floats in one cast of the group's
    numeric features; only a group with a feature that mixes kinds is split value by value (``_mixed``).
    """
    vocab: dict[str, int] = {}
    num, cat, missing = _Parts(), _Parts(), _Parts()
    at = 0
    for names, rows in groups:
        part = features[at : at + rows]
        at += rows
        width = len(names)
        codes = np.array([vocab.setdefault(name, len(vocab)) for name in names], dtype=np.int64)
        values = np.fromiter(
            chain.from_iterable(map(dict.values, part)), dtype=object, count=rows * width
        ).reshape(rows, width)
        split = _split_by_kind(values)
        if split is None:  # a feature changes kind within the group
            _mixed(values, codes, num, cat, missing)
            continue
        numbers, texts, nulls, floats, words = split
        num.same_in_every_row(codes[numbers], rows, floats)
        cat.same_in_every_row(codes[texts], rows, words)
        missing.same_in_every_row(codes[nulls], rows, None)
    names_list = list(vocab)
    return (
        num.nested(names_list, _concat(num.values, np.float64)),
        cat.nested(names_list, list(chain.from_iterable(cat.values))),
        missing.nested(names_list, None),
    )


def _split_by_kind(
    values: np.ndarray,
) -> tuple[list[int], list[int], list[int], np.ndarray, list[str]] | None:
    """A group's features by kind (numbers, text, nulls: column indexes), its numbers as floats row by row
    (booleans 1/0) and its text row by row; None when a feature mixes kinds.

    The first row's kinds are taken as every row's and checked with one set of types per kind; only when
    that fails is each feature's set of types read on its own.
    """
    first = list(map(type, values[0].tolist()))
    numbers = [j for j, kind in enumerate(first) if kind in NUMBERS]
    texts = [j for j, kind in enumerate(first) if kind is str]
    nulls = [j for j, kind in enumerate(first) if kind is type(None)]
    numeric, text = np.take(values, numbers, axis=1), np.take(values, texts, axis=1)  # row by row (C order)
    if not (
        set(map(type, numeric.ravel())) <= NUMBERS
        and set(map(type, text.ravel())) <= {str}
        and set(map(type, np.take(values, nulls, axis=1).ravel())) <= {type(None)}
    ):
        found = [set(map(type, column)) for column in values.T.tolist()]
        numbers = [j for j, types in enumerate(found) if types <= NUMBERS]
        texts = [j for j, types in enumerate(found) if types == {str}]
        nulls = [j for j, types in enumerate(found) if types == {type(None)}]
        if len(numbers) + len(texts) + len(nulls) < len(found):
            return None
        numeric, text = np.take(values, numbers, axis=1), np.take(values, texts, axis=1)
    floats = numeric.astype(np.float64).ravel()  # OverflowError past Float64
    return numbers, texts, nulls, floats, text.ravel().tolist()


def _mixed(values: np.ndarray, codes: np.ndarray, num: _Parts, cat: _Parts, missing: _Parts) -> None:
    """A group in which some feature changes kind: every value's kind read (``_kinds``), split by masks."""
    kinds, floats = _kinds(values)
    num.masked(kinds == NUMBER, codes, floats[kinds == NUMBER])
    cat.masked(kinds == TEXT, codes, values[kinds == TEXT].tolist())
    missing.masked(kinds == MISSING, codes, None)


def _kinds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's kind (``NUMBER``, ``TEXT``, ``MISSING``) and the numbers as floats (0 elsewhere).

    A feature keeps one kind across a group as a rule: its kinds are read as a set, and only a feature
    whose kinds are mixed is looked at value by value.
    """
    rows, width = values.shape
    kinds = np.empty((rows, width), dtype=np.int8)
    floats = np.zeros((rows, width), dtype=np.float64)
    for j in range(width):
        column = values[:, j]
        found = set(map(type, column))
        if found <= NUMBERS:
            kinds[:, j] = NUMBER
            floats[:, j] = column.astype(np.float64)  # OverflowError past Float64
        elif len(found) == 1:
            kinds[:, j] = KINDS[found.pop()]
        else:  # a feature that changes kind within the group: value by value
            kind = np.fromiter(map(KINDS.__getitem__, map(type, column)), dtype=np.int8, count=rows)
            kinds[:, j] = kind
            numeric = kind == NUMBER
            floats[numeric, j] = column[numeric].astype(np.float64)
    return kinds, floats


def output_columns(values: list[Any]) -> tuple[list[str], Nullable]:
    """A prediction or label as text (the JSON number as written, booleans as 1/0) and as a number (null for text)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return values, _nullable(np.full(len(values), np.nan))
    if kinds == {int}:
        return list(map(str, values)), _nullable(np.array(values, dtype=np.float64))
    text = [_text(v) for v in values]
    number = np.array([np.nan if isinstance(v, str) else float(v) for v in values], dtype=np.float64)
    return text, _nullable(number)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return float_text(value)


def float_text(value: float) -> str:
    """A float as ClickHouse writes a JSON number it read (JavaScript's rules, no ``+`` in the exponent).

    The shortest digits that read back as the same float, in fixed notation from 1e-6 to below 1e21.

    >>> [float_text(v) for v in (0.0, -0.0, 100.0, 1e20, 1e21, 4.35e-6, 1e-7, 1.5, 1.7976931348623157e308)]
    ['0', '-0', '100', '100000000000000000000', '1e21', '0.00000435', '1e-7', '1.5', '1.7976931348623157e308']
    """
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    k, n = len(digits), point  # value = 0.<digits> x 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{sign}{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return f"{sign}0.{'0' * -n}{digits}"
    tail = f".{digits[1:]}" if k > 1 else ""
    return f"{sign}{digits[0]}{tail}e{n - 1}"


def _probabilities(maps: list[dict[str, float] | None]) -> Nested:
    given = [m or {} for m in maps]
    counts = np.fromiter(map(len, given), dtype=np.int64, count=len(given))
    total = int(counts.sum())
    keys: list[str] = list(chain.from_iterable(given))
    values = np.fromiter(chain.from_iterable(map(dict.values, given)), dtype=np.float64, count=total)
    return Nested(_offsets([counts]), keys, values)


def _nullable(values: np.ndarray) -> Nullable:
    """NaN marks null: the contract lets no NaN through, so a NaN here can only be a missing value."""
    nulls = np.isnan(values)
    return Nullable(np.where(nulls, 0.0, values), nulls.astype(np.uint8))


def _uuids(ints: list[int]) -> np.ndarray:
    """UUIDs as ClickHouse stores them: the high then the low 64 bits, each little-endian."""
    raw = b"".join(map(int.to_bytes, ints, repeat(16)))
    return np.frombuffer(raw, dtype=">u8").astype("<u8").reshape(len(ints), 2)


def milliseconds(times: list[Any]) -> np.ndarray:
    """Aware datetimes as milliseconds since the epoch, cut (not rounded) as ClickHouse parses them."""
    micros = pa.array(times, type=pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    return micros // 1000


def _offsets(counts: list[np.ndarray]) -> np.ndarray:
    return np.cumsum(_concat(counts, np.int64)).astype(np.uint64)


def _concat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)
