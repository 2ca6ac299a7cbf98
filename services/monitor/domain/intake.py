"""Which records of a batch may be stored: the whole event contract, checked per record. Pure; no I/O.

The internal topics are written by Driftloop's validator, but the broker does not stop another producer
(without ACLs), and one record that cannot be stored would cost its whole insert. So every record is
checked by the contract the ingest uses (``shared.validation``), and what fails is dead-lettered with its
reason and original bytes while its batch-mates are stored. With ``monitor_store_columns`` the events
decoded here are what the worker stores (``event_columns``), so each record is decoded once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from shared import validation, wire
from shared.validation import (
    MAX_EVENT_BYTES,
    EventKind,
    EventTimeBounds,
    Origin,
    Rejection,
    Wire,
    validate,
)


class Record(Protocol):
    """What the worker needs of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


def record_id(record: Record) -> uuid.UUID:
    """A stable id for a record that has none of its own, so its replay deduplicates."""
    return validation.record_id(record.topic, record.partition, record.offset)


@dataclass
class Intake:
    """One topic's records of a batch: the valid events with the line to store for each, and the rest."""

    events: list[Wire] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)


_PREDICTIONS = msgspec.json.Decoder(wire.PredictionWire)
_LABELS = msgspec.json.Decoder(wire.LabelWire)
"""The contract's decoders, called here without ``wire.decode_*``'s wrapper: one call less per record."""

EMPTY = Rejection("empty_message", "the Kafka message has no value (tombstone)")


def check_records(
    kind: EventKind, records: Sequence[Record], bounds: EventTimeBounds, now: datetime
) -> Intake:
    """Validate each record; the stored line is the record's own bytes unless the event had to be completed.

    An event without ``event_id`` or ``occurred_at`` gets stable ones from its record (``Origin``) and is
    stored re-encoded. Other events are not re-encoded (a cost per event for no gain, docs/monitor.md).

    The common record (within the size limit, written by ``wire.encode`` so it gives its own id and time,
    decoded by the contract, in the time bounds) takes a short path: two ``startswith``, one decode and two
    comparisons with the batch's time bounds. Every other record is judged by ``validate`` itself, which
    names the reason; both paths accept exactly the same records.
    """
    out = Intake()
    decode = (_PREDICTIONS if kind is EventKind.PREDICTION else _LABELS).decode
    earliest, latest = bounds.window(now)
    events, lines, kept = out.events, out.lines, out.records
    head, after_id = validation.WIRE_HEADS[kind]
    time_at = len(head) + 36  # the id's characters: ``validation.wire_written``, inlined
    for record in records:
        payload = record.value
        if payload is None:
            out.rejected.append((record, EMPTY))
            continue
        if (
            len(payload) <= MAX_EVENT_BYTES
            and payload.startswith(head)
            and payload.startswith(after_id, time_at)
        ):
            try:
                event = decode(payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass  # validate names the reason
            else:
                if event.occurred_at.tzinfo is None:  # naive times are UTC, as ``wire.decode_*`` reads them
                    event.occurred_at = event.occurred_at.replace(tzinfo=UTC)
                if earliest <= event.occurred_at <= latest:
                    events.append(event)
                    lines.append(payload)
                    kept.append(record)
                    continue
        origin = Origin(record.topic, record.partition, record.offset, getattr(record, "timestamp", None))
        outcome = validate(kind, payload, bounds, now, origin)
        if isinstance(outcome, Rejection):
            out.rejected.append((record, outcome))
            continue
        complete = all(validation.names_id_and_time(kind, payload))
        events.append(outcome)
        lines.append(payload if complete else wire.encode(outcome))
        kept.append(record)
    return out
