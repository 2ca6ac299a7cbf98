"""Every record on a trainer topic is a trigger, a known event of that topic, or a dead letter: never lost,
never fatal. Property tests throw random bytes, random JSON and boundary values at the decoding."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trainer.domain.debounce import Trigger
from services.trainer.domain.triggers import Ignored, Rejection, TriggerLimits, classify, sort_records
from shared.codec import decode_any, encode
from shared.events import (
    DriftDetected,
    DriftKind,
    DriftRecovered,
    EventDeadLettered,
    PredictionLogged,
    RetrainModel,
    TrainingRunStarted,
)
from shared.validation import MAX_ORIGINAL_BYTES, dead_letter

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TOPICS = ("drift-events", "training-runs")
TRIGGER_TYPES = ("drift_detected", "retrain_model")


def _drift(**overrides: Any) -> DriftDetected:
    fields: dict[str, Any] = {
        "model_name": "churn",
        "model_version": "3",
        "kinds": [DriftKind.FEATURE],
        "severity": 0.3,
        "occurred_at": NOW,
        "window_start": NOW - timedelta(hours=1),
        "window_end": NOW,
        "windows_considered": 3,
        "windows_drifted": 2,
    }
    return DriftDetected(**{**fields, **overrides})


def _drift_json(**overrides: Any) -> dict[str, Any]:
    return {**json.loads(encode(_drift())), **overrides}


def _assert_explained(decoded: object, payload: bytes | None, topic: str) -> None:
    """A trigger or known event of its topic, or a dead letter that round-trips with the original bytes."""
    assert isinstance(decoded, Trigger | Ignored | Rejection), decoded
    if isinstance(decoded, Rejection):
        letter = dead_letter(topic, 0, 7, payload, decoded)
        back = decode_any(encode(letter))
        assert isinstance(back, EventDeadLettered) and back.reason == decoded.reason
        assert back.original == (payload or b"")[:MAX_ORIGINAL_BYTES]
        assert back.source == f"topic:{topic}" and back.source_offset == 7
    elif isinstance(decoded, Ignored):
        assert decoded.event.topic == topic and decoded.event.event_type not in TRIGGER_TYPES
    else:
        assert NOW - timedelta(days=365) <= decoded.occurred_at <= NOW


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**80)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
times = st.datetimes(timezones=st.none() | st.just(UTC)).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2400-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
)
trigger_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from([*TRIGGER_TYPES, "drift_recovered", "training_run_started", "nope"])},
    optional={
        "model_name": st.sampled_from(["churn", "", "x" * 201]) | st.text(max_size=4),
        "model_version": st.text(max_size=3) | st.integers(),
        "occurred_at": times,
        "window_start": times,
        "window_end": times,
        "kinds": st.lists(st.sampled_from(["feature", "performance", "other"]), max_size=2) | json_values,
        "severity": st.floats() | st.integers(min_value=-(2**70), max_value=2**70),
        "windows_considered": st.integers(min_value=-(2**70), max_value=2**70),
        "windows_drifted": st.integers(min_value=-(2**70), max_value=2**70),
        "reason": st.sampled_from(["drift", "manual", "schedule", "bogus"]),
        "run_id": st.uuids().map(str) | st.text(max_size=4),
        "event_id": st.uuids().map(str) | st.text(max_size=4),
        "schema_version": st.integers(min_value=-(2**70), max_value=2**70),
        "extra": json_values,
    },
)


def _json(value: Any) -> bytes:
    # json.dumps writes NaN/Infinity tokens, exactly what careless producers send
    return json.dumps(value).encode()


payloads = (
    st.none()
    | st.binary(max_size=300)
    | json_values.map(_json)
    | trigger_like.map(_json)
    | trigger_like.map(lambda d: _json(d).decode().encode("utf-16"))
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, topic=st.sampled_from(TOPICS))
def test_any_record_is_a_trigger_a_known_event_or_a_dead_letter(payload: bytes | None, topic: str) -> None:
    _assert_explained(classify(payload, topic, NOW), payload, topic)


BOUNDARIES: list[tuple[bytes | None, str]] = [
    (None, "empty_message"),
    (b"", "invalid_event"),
    (b"\xff\xfe\x00garbage", "invalid_event"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_event"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "invalid_event"),
    (b'{"event_type": "drift_detected", "pad": "' + b"x" * 2_000_000 + b'"}', "invalid_event"),
    # severity is the monitor's report, not used for training: 1e999 there harms nothing
    (_json(_drift_json()).replace(b'"severity": 0.3', b'"severity": 1e999'), "ok"),
    (_json(_drift_json(windows_drifted=-1)), "invalid_event"),
    (_json(_drift_json(windows_considered=2**64)) + b" ", "ok"),
    (_json(_drift_json(occurred_at="2400-01-01T00:00:00Z")), "too_far_in_future"),
    (_json(_drift_json(window_start="2400-01-01T00:00:00Z")), "too_far_in_future"),
    (_json(_drift_json(occurred_at="1970-01-01T00:00:00Z")), "too_old"),
    (_json(_drift_json(window_start="1970-01-01T00:00:00Z")), "too_old"),
    (_json(_drift_json(occurred_at="0001-01-01T00:00:00+05:00")), "invalid_event"),
    (_json(_drift_json(kinds=[[[[[]]]]])), "invalid_event"),
    (
        encode(
            PredictionLogged(
                model_name="churn", model_version="1", prediction_id="p", features={}, prediction=1
            )
        ),
        "wrong_topic",
    ),
    (encode(RetrainModel(model_name="churn", occurred_at=NOW)), "wrong_topic"),
]


def test_boundary_values_are_dead_lettered_with_their_reason() -> None:
    for payload, reason in BOUNDARIES:
        decoded = classify(payload, "drift-events", NOW)
        _assert_explained(decoded, payload, "drift-events")
        if reason == "ok":
            assert isinstance(decoded, Trigger), decoded
        else:
            assert isinstance(decoded, Rejection) and decoded.reason == reason, (
                payload[:80] if payload else payload,
                decoded,
            )


def test_events_that_belong_on_the_topic_but_start_nothing_are_not_dead_lettered() -> None:
    recovered = DriftRecovered(
        model_name="churn", model_version="3", occurred_at=NOW, window_start=NOW, window_end=NOW
    )
    started = TrainingRunStarted(model_name="churn", run_id=NOW.strftime("%Y%m%d").zfill(32), reason="drift")
    assert isinstance(classify(encode(recovered), "drift-events", NOW), Ignored)
    assert isinstance(classify(encode(started), "training-runs", NOW), Ignored)


def test_a_clock_a_little_ahead_is_tolerated_as_now_and_limits_are_settings() -> None:
    ahead = encode(_drift(occurred_at=NOW + timedelta(minutes=40)))
    decoded = classify(ahead, "drift-events", NOW)
    assert isinstance(decoded, Trigger) and decoded.occurred_at == NOW
    strict = TriggerLimits(max_future=timedelta(minutes=1))
    assert isinstance(classify(ahead, "drift-events", NOW, strict), Rejection)
    a_year_ago = encode(_drift(occurred_at=NOW - timedelta(days=300), window_start=NOW - timedelta(days=301)))
    assert isinstance(classify(a_year_ago, "drift-events", NOW), Trigger)


def test_a_2_mb_original_is_cut_so_its_dead_letter_fits_one_kafka_message() -> None:
    payload = b"x" * 2_000_000
    letter = dead_letter("drift-events", 1, 2, payload, Rejection("invalid_event", "json_invalid"))
    assert len(letter.original) == MAX_ORIGINAL_BYTES and "truncated from 2000000" in letter.detail
    assert len(encode(letter)) < 1_000_000


def test_a_batch_splits_into_triggers_and_dead_letters_with_partition_and_offset() -> None:
    def record(topic: str, offset: int, value: bytes | None) -> ConsumerRecord[Any, Any]:
        return ConsumerRecord(topic, 1, offset, 0, 0, b"k", value, None, 1, len(value or b""), ())

    prefix = "t-1-"
    drift = _drift()
    records = [
        record(f"{prefix}drift-events", 10, b"\x00\x01garbage"),
        record(f"{prefix}drift-events", 11, encode(drift)),
        record(f"{prefix}training-runs", 12, encode(RetrainModel(model_name="fraud", occurred_at=NOW))),
        record(f"{prefix}training-runs", 13, None),
    ]
    triggers, letters = sort_records(records, prefix, NOW, TriggerLimits())
    assert [(t, trig.model_name) for t, trig in triggers] == [
        (f"{prefix}drift-events", "churn"),
        (f"{prefix}training-runs", "fraud"),
    ]
    assert [(ll.source, ll.source_offset, ll.reason) for ll in letters] == [
        (f"topic:{prefix}drift-events", 10, "invalid_event"),
        (f"topic:{prefix}training-runs", 13, "empty_message"),
    ]
    assert base64.b64decode(json.loads(encode(letters[0]))["original"]) == b"\x00\x01garbage"


def test_a_record_read_twice_makes_the_same_dead_letter() -> None:
    rejection = Rejection("invalid_event", "json_invalid")
    first = dead_letter("drift-events", 1, 2, b"x", rejection)
    assert dead_letter("drift-events", 1, 2, b"x", rejection).event_id == first.event_id
    assert dead_letter("drift-events", 1, 3, b"x", rejection).event_id != first.event_id
