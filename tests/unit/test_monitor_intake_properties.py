"""Property tests of the monitor's intake: any record is stored or dead-lettered with a reason, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.monitor.domain.batches import decode_batch
from services.monitor.domain.intake import check_records
from services.monitor.domain.tables import dead_letter_rows, model_event_rows
from shared import codec, wire
from shared.events import DataQualityCounted, EventDeadLettered
from shared.validation import EventKind, EventTimeBounds, Origin, Rejection, dead_letter, validate
from tests.unit.test_ingest_properties import bodies, event_like
from tests.unit.test_monitor_records import Rec

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BOUNDS = EventTimeBounds(timedelta(minutes=5), timedelta(days=365))


boundary_times = st.sampled_from(
    ["2400-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00", "9999-12-31T23:59:59Z",
     "2026-12-07T12:04:59Z", "2026-12-07T12:05:01Z", "2025-12-08T12:00:00Z", "2026-12-07T11:00:00+09:00"]
)  # fmt: skip
boundary_values = st.sampled_from(
    ["1e999", "-1e999", "NaN", "18446744073709551616", "-9223372036854775809", "1e-400", "[[[[[[[[1]]]]]]]]",
     '"\\u0000"', '"\\ud800"', "null", "{}", "[]", '"' + "ü" * 50 + '"']
)  # fmt: skip


@st.composite
def boundary_events(draw: st.DrawFn) -> bytes:
    """A well-formed prediction with one boundary value spliced in as raw JSON text."""
    value = draw(boundary_values)
    at = draw(boundary_times)
    prediction = draw(st.sampled_from(["1", value]))
    head = f'"model_name": "m", "model_version": "1", "prediction_id": "p", "occurred_at": "{at}"'
    return ("{" + head + f', "features": {{"x": {value}, "y": 1}}, "prediction": {prediction}' + "}").encode()


records = st.lists(
    bodies | boundary_events() | event_like.map(lambda e: json.dumps(e).encode()) | st.none(), max_size=10
)


@settings(max_examples=400, deadline=None)
@given(payloads=records, labels=st.booleans())
def test_every_record_is_stored_or_dead_lettered_with_its_bytes(
    payloads: list[bytes | None], labels: bool
) -> None:
    kind = EventKind.LABEL if labels else EventKind.PREDICTION
    batch = [Rec("predictions", 0, i, p, 1_765_000_000_000) for i, p in enumerate(payloads)]
    intake = check_records(kind, batch, BOUNDS, NOW)
    assert len(intake.events) + len(intake.rejected) == len(payloads)
    assert len(intake.lines) == len(intake.events) == len(intake.records)
    for event, line in zip(intake.events, intake.lines, strict=True):
        assert NOW - BOUNDS.max_age <= event.occurred_at <= NOW + BOUNDS.max_future
        again = wire.decode_label(line) if labels else wire.decode_prediction(line)
        assert again.event_id == event.event_id  # what is stored carries the id the dedup relies on
    for record, rejection in intake.rejected:
        letter = EventDeadLettered.model_validate_json(
            dead_letter(
                record.topic, record.partition, record.offset, record.value, rejection
            ).model_dump_json()
        )
        assert letter.reason and letter.source == "topic:predictions"
        assert letter.original == (record.value or b"")[: len(letter.original)]


def test_an_event_without_id_or_time_gets_the_same_ones_on_every_replay() -> None:
    minimal = (
        b'{"model_name": "m", "model_version": "1", "prediction_id": "p", "features": {}, "prediction": 1}'
    )
    record = Rec("predictions", 2, 41, minimal, int((NOW - timedelta(minutes=1)).timestamp() * 1000))
    first = check_records(EventKind.PREDICTION, [record], BOUNDS, NOW)
    replay = check_records(EventKind.PREDICTION, [record], BOUNDS, NOW + timedelta(seconds=30))
    assert first.lines == replay.lines
    assert first.events[0].occurred_at == NOW - timedelta(minutes=1)


def test_time_bounds_name_the_field_and_the_setting() -> None:
    future = BOUNDS.check(NOW + timedelta(minutes=6), NOW, "churn")
    old = BOUNDS.check(datetime(1970, 1, 1, tzinfo=UTC), NOW, "churn")
    assert future is not None and future.reason == "too_far_in_future" and future.model_name == "churn"
    assert "DRIFTLOOP_EVENT_MAX_FUTURE_SECONDS" in future.detail and future.errors[0].field == "occurred_at"
    assert old is not None and old.reason == "too_old" and "DRIFTLOOP_MONITOR_RETENTION_DAYS" in old.detail
    assert BOUNDS.check(NOW + timedelta(minutes=4), NOW) is None
    assert BOUNDS.check(NOW - timedelta(days=364), NOW) is None


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(bodies | st.none(), max_size=6))
def test_side_topics_turn_any_record_into_a_row_or_a_dead_letter(payloads: list[bytes | None]) -> None:
    """dead-letter, model-events and data-quality records: every one is a row, or refused with a reason."""
    records = [Rec("side", 0, i, p) for i, p in enumerate(payloads)]
    assert len(dead_letter_rows(records, NOW)) == len(payloads)  # an unreadable dead letter is kept whole
    rows, bad = model_event_rows(records, NOW)
    assert len(rows) + len(bad) == len(payloads) and all(reason for _, reason in bad)
    events, good, refused = decode_batch(records, lambda b: codec.decode(b, DataQualityCounted))
    assert len(good) + len(refused) == len(payloads) and len(events) == len(good)


@st.composite
def encoded_events(draw: st.DrawFn) -> bytes:
    """An event as ``wire.encode`` writes it (the ingest's form), possibly cut, altered or out of bounds."""
    at = NOW + timedelta(seconds=draw(st.integers(-400 * 86400, 600)))
    event = wire.PredictionWire(
        model_name="m",
        model_version="1",
        prediction_id="p",
        occurred_at=at,
        features={
            "x": draw(st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3)),
            "event_id": 1,
        },
        prediction=1,
    )
    encoded = wire.encode(event)
    change = draw(st.sampled_from(["none", "cut", "short_id", "no_time", "no_id", "value"]))
    if change == "cut":
        return encoded[: draw(st.integers(0, len(encoded)))]
    if change == "short_id":
        return encoded.replace(str(event.event_id).encode(), b"abc", 1)
    if change == "no_time":  # the head still begins as the ingest writes it, but without occurred_at
        return encoded.replace(b'"occurred_at"', b'"occurred_on"', 1)
    if change == "no_id":  # "event_id" remains only as a feature's name
        return encoded.replace(b'"event_id":"' + str(event.event_id).encode() + b'",', b"", 1)
    if change == "value":
        return encoded.replace(b'"x":', b'"x":' + draw(boundary_values).encode() + b',"z":', 1)
    return encoded


@settings(max_examples=400, deadline=None)
@given(payloads=st.lists(encoded_events() | boundary_events(), max_size=8))
def test_the_short_path_accepts_exactly_what_the_contract_accepts(payloads: list[bytes]) -> None:
    """What ``check_records`` keeps, and why it refuses the rest, is what ``validate`` says record by record."""
    batch = [Rec("predictions", 0, i, p, 1_765_000_000_000) for i, p in enumerate(payloads)]
    intake = check_records(EventKind.PREDICTION, batch, BOUNDS, NOW)
    expected = [
        validate(
            EventKind.PREDICTION, r.value, BOUNDS, NOW, Origin(r.topic, r.partition, r.offset, r.timestamp)
        )
        for r in batch
    ]
    kept = [(r.offset, o) for r, o in zip(batch, expected, strict=True) if not isinstance(o, Rejection)]
    assert [r.offset for r in intake.records] == [offset for offset, _ in kept]
    assert [(e.event_id, e.occurred_at) for e in intake.events] == [
        (o.event_id, o.occurred_at) for _, o in kept if not isinstance(o, Rejection)
    ]
    assert [(r.offset, why.reason) for r, why in intake.rejected] == [
        (r.offset, o.reason) for r, o in zip(batch, expected, strict=True) if isinstance(o, Rejection)
    ]
