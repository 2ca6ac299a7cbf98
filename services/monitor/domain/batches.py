"""A batch of records on its way through a worker: decoded, split for concurrent inserts, and its event times.

Pure: records in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from services.monitor.domain.intake import Intake, Record
from services.monitor.domain.progress import datetime_to_ms
from shared import wire
from shared.validation import Rejection, Wire

T = TypeVar("T")

MIN_INSERT_ROWS = 5_000
"""Smallest piece a batch's events are split into for concurrent inserts."""

Decoded = tuple[list[Any], list[Record], list[tuple[Record, str]]]
"""What ``decode_batch`` returns: decoded values, their records, and the refused records with the reason."""

REFUSED = Rejection(
    "refused_by_clickhouse",
    "ClickHouse could not store this event although it passed the contract; it is kept here, not lost",
)


@dataclass
class Batch:
    """One batch per topic, with the predictions and labels already checked against the contract."""

    records: dict[str, list[Record]]
    intakes: dict[str, Intake]


@dataclass
class Stored:
    """What a stored batch leaves for ``advance``: the stored predictions and their records."""

    heads: list[Wire]
    records: list[Record]


def decode_batch(records: Sequence[Record], decode: Any) -> Decoded:
    """Decode what is valid; returns the decoded values, their records, and the rest with the reason."""
    decoded: list[Any] = []
    good: list[Record] = []
    bad: list[tuple[Record, str]] = []
    for record in records:
        try:
            decoded.append(decode(record.value or b""))
            good.append(record)
        except (wire.WireError, ValueError) as exc:
            bad.append((record, str(exc)[:500]))
    return decoded, good, bad


def insert_pieces(lines: list[T], streams: int) -> list[list[T]]:
    """A batch's events in up to ``streams`` consecutive pieces of at least ``MIN_INSERT_ROWS``, to insert at once.

    The server stores an insert on one core, so two halves at once store a big batch faster for the same
    server CPU per event (docs/monitor.md). Small batches stay whole, as every piece is a part the server
    writes now and merges later.

    >>> [len(p) for p in insert_pieces([b"{}"] * 12_000, 2)], len(insert_pieces([b"{}"] * 100, 2))
    ([6000, 6000], 1)
    """
    pieces = max(1, min(streams, len(lines) // MIN_INSERT_ROWS))
    size = -(-len(lines) // pieces)
    return [lines[i * size : (i + 1) * size] for i in range(pieces)]


def event_time_ranges(heads: Sequence[Wire]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per model and version, the earliest and latest event time (ms) in a batch.

    Times are grouped as they are and compared in C (``min``/``max``); only the two ends of each group are
    converted, not every event's time.
    """
    times: dict[tuple[str, str], list[datetime]] = {}
    for e in heads:
        key = (e.model_name, getattr(e, "model_version", None) or "")
        group = times.get(key)
        if group is None:
            times[key] = group = []
        group.append(e.occurred_at)
    ranges: dict[str, dict[str, tuple[int, int]]] = {}
    for (model, version), group in times.items():
        ranges.setdefault(model, {})[version] = (datetime_to_ms(min(group)), datetime_to_ms(max(group)))
    return ranges


def latest_offsets(heads: Sequence[Wire], records: Sequence[Record]) -> dict[str, int]:
    """Per model, the newest offset of its records in the batch (what its checkpoint covers)."""
    offsets: dict[str, int] = {}
    for head, record in zip(heads, records, strict=True):
        if record.offset > offsets.get(head.model_name, -1):
            offsets[head.model_name] = record.offset
    return offsets
