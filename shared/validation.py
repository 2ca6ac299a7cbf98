"""Whether the bytes of one prediction or label are a valid event, and why not. Pure; no I/O.

The one check every entry point runs, so they agree: the ingest service (HTTP, and the stream validator of
the public ``*-raw`` topics) and the monitor (the internal topics, which no producer outside Driftloop
should write, but one might). Decoding uses the msgspec fast path; only rejected items pay for pydantic's
complete, per-field error list. Feature schemas are not checked here: that needs the registry (ingest).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import msgspec
from pydantic import ValidationError

from shared import wire
from shared.events import EventDeadLettered, LabelLogged, PredictionLogged

if TYPE_CHECKING:
    from shared.settings import Settings

MAX_FIELD_ERRORS = 20
MAX_EVENT_BYTES = 800 * 1024
"""Largest event that still fits one Kafka message (the broker's default limit is 1 MiB)."""

EARLIEST_STORABLE = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_STORABLE = datetime(2105, 12, 31, tzinfo=UTC)
"""ClickHouse's ``DateTime`` (the tables' TTL expressions) holds 1970 to 2106; outside it a time wraps."""


class EventKind(StrEnum):
    PREDICTION = "prediction"
    LABEL = "label"


Wire = wire.PredictionWire | wire.LabelWire


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class Rejection:
    """Why an input was refused: a machine-readable ``reason`` and errors naming each field."""

    reason: str
    detail: str
    model_name: str = "unknown"
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True)
class EventTimeBounds:
    """How far from the receiving clock an event's time may be, so one wrong clock can't skew the loop.

    Too far ahead, an event would move its model's watermark and close windows before their data arrived
    (a year-2400 event once made the monitor list every window up to 2400). Older than the monitor keeps
    rows (its TTL), it would be dropped by ClickHouse on insert without a trace.
    """

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=365)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventTimeBounds:
        return cls(
            timedelta(seconds=settings.event_max_future_seconds),
            timedelta(days=settings.monitor_retention_days),
        )

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The earliest and latest event time that may enter, by the receiving clock ``now``."""
        return max(now - self.max_age, EARLIEST_STORABLE), min(now + self.max_future, LATEST_STORABLE)

    def check(self, occurred_at: datetime, now: datetime, model_name: str = "unknown") -> Rejection | None:
        """None when ``occurred_at`` may enter; otherwise ``too_far_in_future`` or ``too_old``."""
        latest = min(now + self.max_future, LATEST_STORABLE)
        if occurred_at > latest:
            detail = (
                f"occurred_at {occurred_at.isoformat()} is more than {_span(self.max_future)} ahead of "
                f"the receiver's clock ({now.isoformat(timespec='seconds')}): check the producer's clock "
                "or raise DRIFTLOOP_EVENT_MAX_FUTURE_SECONDS"
            )
            return Rejection("too_far_in_future", detail, model_name, (FieldError("occurred_at", detail),))
        earliest = max(now - self.max_age, EARLIEST_STORABLE)
        if occurred_at < earliest:
            detail = (
                f"occurred_at {occurred_at.isoformat()} is older than the {_span(self.max_age)} the "
                "monitor keeps (DRIFTLOOP_MONITOR_RETENTION_DAYS): it would expire as it is stored"
            )
            return Rejection("too_old", detail, model_name, (FieldError("occurred_at", detail),))
        return None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} s"


class _ModelNameOnly(msgspec.Struct):
    model_name: str = "unknown"


_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")
_UNION_MEMBER = re.compile(r"^(bool|int|float|str|none|.*\[.*\])$")
_MODEL_NAME = re.compile(rb'"model_name"\s*:\s*"([^"\\]{1,200})"')
_NON_FINITE = re.compile(rb"\b(?:-?Infinity|NaN)\b")


def model_name_of(payload: bytes) -> str:
    """The model an invalid event claims, for counting and the dead-letter key; 'unknown' if unreadable."""
    try:
        name = msgspec.json.decode(payload, type=_ModelNameOnly).model_name
    except (msgspec.DecodeError, UnicodeDecodeError):
        # unparseable as a whole (e.g. a NaN token) but the model may still be legible
        match = _MODEL_NAME.search(payload)
        return match.group(1).decode("utf-8", "replace") if match else "unknown"
    return name[:200] if name else "unknown"


def _pydantic_errors(kind: EventKind, payload: bytes) -> tuple[FieldError, ...]:
    """Every field error, from the pydantic contract (slow, so only for rejected items)."""
    model = PredictionLogged if kind is EventKind.PREDICTION else LabelLogged
    try:
        model.model_validate_json(payload)
    except ValidationError as exc:
        messages: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            # pydantic names union members in the path (features.age.float): keep the field path, join messages
            path = ".".join(
                str(p) for p in error["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p))
            )
            found = messages.setdefault(path or "body", [])
            if error["msg"] not in found:
                found.append(error["msg"])
        return tuple(FieldError(path, "; ".join(found)) for path, found in messages.items())[
            :MAX_FIELD_ERRORS
        ]
    except (
        RecursionError,
        ValueError,
    ) as exc:  # nesting too deep for the slow path: keep the fast one's word
        return (FieldError("body", str(exc)[:500]),)
    return ()


def too_large(payload: bytes) -> Rejection | None:
    if len(payload) <= MAX_EVENT_BYTES:
        return None
    detail = f"event of {len(payload)} bytes is over the {MAX_EVENT_BYTES}-byte limit of one event"
    return Rejection("event_too_large", detail, errors=(FieldError("body", detail),))


def decode(kind: EventKind, payload: bytes) -> Wire | Rejection:
    """The event, or a rejection: ``invalid_json``, ``non_finite_number`` or ``schema_error``."""
    try:
        if kind is EventKind.PREDICTION:
            return wire.decode_prediction(payload)
        return wire.decode_label(payload)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason = "non_finite_number" if message.startswith("Number out of range") else "schema_error"
        return _rejection(kind, payload, reason, message)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        if _NON_FINITE.search(payload):
            detail = "NaN and Infinity are not allowed: send null for a missing value"
            errors = tuple(e for e in _pydantic_errors(kind, payload) if "finite" in e.message)
            return Rejection(
                "non_finite_number", detail, model_name_of(payload), errors or (FieldError("body", detail),)
            )
        return Rejection("invalid_json", str(exc), model_name_of(payload), (FieldError("body", str(exc)),))


def _rejection(kind: EventKind, payload: bytes, reason: str, message: str) -> Rejection:
    errors = _pydantic_errors(kind, payload)
    if not errors:  # the contracts agree on validity; keep msgspec's word and its path
        match = _PATH.search(message)
        errors = (FieldError(match.group("path") if match else "body", message),)
    if any("finite" in e.message for e in errors):
        reason = "non_finite_number"
    return Rejection(reason, message, model_name_of(payload), errors)


@dataclass(frozen=True)
class Origin:
    """Where a record came from, so an event that left out its id or time gets the same ones on a replay.

    A random id or the decoding clock would make a replayed record a second event; the Kafka coordinates
    and the record's own timestamp are the same every time it is read.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


RECORD_NAMESPACE = uuid.UUID("0b6a4c4e-64c9-4a0e-8f1e-7f1e8f0e2d31")


def record_id(topic: str, partition: int, offset: int) -> uuid.UUID:
    """A stable id for a record that has none of its own, so its replay deduplicates."""
    return uuid.uuid5(RECORD_NAMESPACE, f"{topic}\x1f{partition}\x1f{offset}")


MAX_ORIGINAL_BYTES = 600 * 1024
"""Base64 makes the original a third larger; beyond this the dead letter would not fit one Kafka message."""


class Refusal(Protocol):
    """Why a record is refused, as every consumer's own rejection type says it."""

    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def model_name(self) -> str: ...


def dead_letter(
    topic: str, partition: int, offset: int, payload: bytes | None, refusal: Refusal
) -> EventDeadLettered:
    """The dead letter of a refused Kafka record, whichever service refused it.

    Its id is the record's (``record_id``), so a record read again after a crash yields the same letter
    and the ``dead_letters`` table keeps one. An original too large for one message is cut, and the
    detail says so.
    """
    original, detail = payload or b"", refusal.detail[:2000]
    if len(original) > MAX_ORIGINAL_BYTES:
        detail += f" (original truncated from {len(original)} to {MAX_ORIGINAL_BYTES} bytes)"
        original = original[:MAX_ORIGINAL_BYTES]
    return EventDeadLettered(
        event_id=record_id(topic, partition, offset),
        model_name=refusal.model_name[:200] or "unknown",
        source=f"topic:{topic}",
        reason=refusal.reason,
        detail=detail,
        original=original,
        source_partition=partition,
        source_offset=offset,
    )


WIRE_HEADS = {
    kind: (
        f'{{"event_type":"{tag}","event_id":"'.encode(),
        f'","schema_version":{wire.SCHEMA_VERSION},"occurred_at":"'.encode(),
    )
    for kind, tag in ((EventKind.PREDICTION, "prediction_logged"), (EventKind.LABEL, "label_logged"))
}
"""How ``wire.encode`` (the ingest, the SDK) begins an event: its tag, then its id (36 characters), the schema
version and the event time, so both are given at the event's top level."""
_UUID_CHARS = 36


def wire_written(kind: EventKind, payload: bytes) -> bool:
    """Does ``payload`` begin as ``wire.encode`` writes an event of ``kind``: with its own id and time?

    Two comparisons at fixed places; searching the whole record for the two names cost about 0.4 µs per
    event (docs/monitor.md), and also found a feature of that name.
    """
    head, after_id = WIRE_HEADS[kind]
    return payload.startswith(head) and payload.startswith(after_id, len(head) + _UUID_CHARS)


class _IdAndTime(msgspec.Struct):
    event_id: msgspec.Raw = msgspec.Raw()
    occurred_at: msgspec.Raw = msgspec.Raw()


_ID_AND_TIME = msgspec.json.Decoder(_IdAndTime)


def names_id_and_time(kind: EventKind, payload: bytes) -> tuple[bool, bool]:
    """Whether a decodable event gives its own ``event_id`` and ``occurred_at`` at its top level.

    Searching the bytes for ``"event_id"`` also found a feature of that name, and the event then kept the
    random id its decoding gave it, a new one on every replay, which the stores cannot deduplicate.
    """
    if wire_written(kind, payload):
        return True, True
    if b'"event_id"' not in payload and b'"occurred_at"' not in payload:
        return False, False
    found = _ID_AND_TIME.decode(payload)
    return len(found.event_id) > 0, len(found.occurred_at) > 0


def validate(
    kind: EventKind,
    payload: bytes,
    bounds: EventTimeBounds,
    now: datetime,
    origin: Origin | None = None,
) -> Wire | Rejection:
    """The whole contract for one event: size, JSON, fields and types, and a plausible event time."""
    rejection = too_large(payload)
    if rejection is not None:
        return rejection
    outcome = decode(kind, payload)
    if isinstance(outcome, Rejection):
        return outcome
    if origin is not None:
        has_id, has_time = names_id_and_time(kind, payload)
        if not has_id:
            outcome.event_id = record_id(origin.topic, origin.partition, origin.offset)
        if not has_time and origin.timestamp_ms is not None and origin.timestamp_ms >= 0:
            outcome.occurred_at = datetime.fromtimestamp(origin.timestamp_ms / 1000, UTC)
    return bounds.check(outcome.occurred_at, now, outcome.model_name) or outcome
