"""What a record on a trainer topic is: a trigger, an event that starts nothing, or a dead letter.

Pure: takes the record's bytes and the time, returns data. No input raises; whatever cannot become a
trigger or a known event of its topic becomes a ``Rejection`` the worker keeps on ``dead-letter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from services.trainer.domain.debounce import Trigger
from shared.codec import decode_any
from shared.events import DriftDetected, DriftKind, Event, EventDeadLettered, RetrainModel
from shared.validation import dead_letter

"""Dead letters get ids derived from where the record was (topic, partition, offset): read again after a
crash, the same record makes the same dead letter, which sinks deduplicate by ``event_id``."""


@dataclass(frozen=True)
class TriggerLimits:
    """How far a trigger's times may lie from now: past ``max_future`` is a broken clock, past ``max_age``
    (what the monitor keeps, 365 days) a record from another era; either would steer the debouncer or the
    training window wrongly. An hour ahead is tolerated (hosts' clocks differ; a drift event is dated by
    the end of its event-time window), and such a trigger counts as arriving now."""

    max_future: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(days=365)


@dataclass(frozen=True)
class Rejection:
    """Why a record is dead-lettered: a short machine-readable ``reason`` and a ``detail`` for people."""

    reason: str
    detail: str
    model_name: str = "unknown"


@dataclass(frozen=True)
class Ignored:
    """A valid event of this topic that starts no run (``DriftRecovered``, the trainer's own run events)."""

    event: Event


Decoded = Trigger | Ignored | Rejection


def trigger_of(event: Event) -> Trigger | None:
    """A ``DriftDetected`` or ``RetrainModel`` as a trigger; the trainer's own run events are not triggers."""
    if isinstance(event, DriftDetected):
        return Trigger(
            model_name=event.model_name,
            reason="drift",
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            drift_event_id=event.event_id,
            window_start=event.window_start,
            needs_labels=set(event.kinds) == {DriftKind.ESTIMATED_PERFORMANCE},
        )
    if isinstance(event, RetrainModel):
        return Trigger(
            model_name=event.model_name,
            reason=event.reason,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            drift_event_id=event.drift_event_id,
        )
    return None


def _first_error(exc: ValidationError) -> str:
    """The first problem as ``field: message`` (never the input itself: it may be megabytes)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(part) for part in first["loc"]) or "(document)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"[:2000]


def _time_problem(trigger: Trigger, now: datetime, limits: TriggerLimits) -> Rejection | None:
    for name, at in (("occurred_at", trigger.occurred_at), ("window_start", trigger.window_start)):
        if at is None:
            continue
        if at > now + limits.max_future:
            detail = f"{name} {at.isoformat()} is more than {limits.max_future} after now ({now.isoformat()})"
            return Rejection("too_far_in_future", detail, trigger.model_name)
        if at < now - limits.max_age:
            detail = f"{name} {at.isoformat()} is more than {limits.max_age} before now ({now.isoformat()})"
            return Rejection("too_old", detail, trigger.model_name)
    return None


def classify(
    payload: bytes | None, topic: str, now: datetime, limits: TriggerLimits | None = None
) -> Decoded:
    """What one record of ``topic`` (its name without the deployment prefix) is; never raises on input.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from shared.codec import encode
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> classify(encode(RetrainModel(model_name="churn", occurred_at=now)), "training-runs", now).reason
    'manual'
    >>> classify(b"not json", "drift-events", now).reason
    'invalid_event'
    >>> classify(encode(RetrainModel(model_name="churn", occurred_at=now)), "drift-events", now).reason
    'wrong_topic'
    """
    limits = limits or TriggerLimits()
    if payload is None:
        return Rejection("empty_message", "the Kafka message has no value (tombstone)")
    try:
        event = decode_any(payload)
    except ValidationError as exc:
        return Rejection("invalid_event", _first_error(exc))
    except OverflowError as exc:  # a time at the edge of the calendar with an offset (0001-01-01T00:00+05:00)
        return Rejection("invalid_event", f"a time is out of range: {exc}")
    if event.topic != topic:
        detail = f"a {event.event_type} event belongs on {event.topic or 'no topic'!r}, not {topic!r}"
        return Rejection("wrong_topic", detail, event.model_name)
    trigger = trigger_of(event)
    if trigger is None:
        return Ignored(event)
    problem = _time_problem(trigger, now, limits)
    if problem is not None:
        return problem
    # a clock a little ahead: the data it is about is already there, so a run starting now covers it
    return replace(trigger, occurred_at=now) if trigger.occurred_at > now else trigger


class Record(Protocol):
    """A record read from a trainer topic (an aiokafka ``ConsumerRecord`` in the worker)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


def decode_triggers(
    payloads: list[bytes | None], topic: str = "drift-events", now: datetime | None = None
) -> list[Trigger]:
    """The triggers among ``payloads`` of ``topic`` (tests and tools; the worker dead-letters the rest)."""
    now = now or datetime.now(UTC)
    return [d for p in payloads if isinstance(d := classify(p, topic, now), Trigger)]


def sort_records(
    records: Sequence[Record], prefix: str, now: datetime, limits: TriggerLimits
) -> tuple[list[tuple[str, Trigger]], list[EventDeadLettered]]:
    """Triggers (with their topic) and dead letters of one batch; known non-trigger events drop out."""
    triggers: list[tuple[str, Trigger]] = []
    letters: list[EventDeadLettered] = []
    for record in records:
        decoded = classify(record.value, record.topic.removeprefix(prefix), now, limits)
        if isinstance(decoded, Rejection):
            letters.append(dead_letter(record.topic, record.partition, record.offset, record.value, decoded))
        elif not isinstance(decoded, Ignored):
            triggers.append((record.topic, decoded))
    return triggers, letters
