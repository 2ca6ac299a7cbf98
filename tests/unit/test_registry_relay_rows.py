"""Which outbox rows the relay may send, and why a row cannot be announced; outage logging, once per change."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.domain.outbox import OutboxMessage, malformed, sendable
from shared.codec import encode
from shared.dependencies import Dependencies
from shared.events import ModelCreated


def _row(id: int, model: str, payload: bytes | None = None) -> OutboxMessage:
    body = payload if payload is not None else encode(ModelCreated(model_name=model, created_by="wes"))
    return OutboxMessage(id, model, "model_created", body)


def test_rows_after_a_refused_row_of_the_same_model_wait_and_other_models_go() -> None:
    rows = [_row(1, "a"), _row(2, "b"), _row(3, "a"), _row(4, "c"), _row(5, "b")]
    assert [r.id for r in sendable(rows, {2: "too large"})] == [1, 3, 4]
    assert [r.id for r in sendable(rows, {})] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_event"),
        (b"\xff\x00", "invalid_event"),
        (b"[" * 10_000, "invalid_event"),
        (b'{"event_type": "model_created", "model_name": "a"}', "invalid_event: model_created.created_by"),
        (encode(ModelCreated(model_name="other", created_by="wes")), "model_mismatch"),
        (
            b'{"event_type":"model_created","model_name":"a","created_by":"w","occurred_at":"0001-01-01T00:00:00+05:00"}',
            "invalid_event",
        ),
    ],
)
def test_a_row_that_is_not_an_event_of_its_model_says_why(payload: bytes, reason: str) -> None:
    found = malformed(_row(1, "a", payload))
    assert found is not None and found.startswith(reason), found


def test_a_valid_row_is_not_malformed() -> None:
    assert malformed(_row(1, "a")) is None


def test_an_outage_is_two_log_lines_whatever_the_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shared.dependencies")
    dependencies = Dependencies()
    for attempt in range(50):
        dependencies.away("database", f"refused ({attempt})")
    assert dependencies.status() == {"status": "degraded", "unavailable": {"database": "refused (49)"}}
    for _ in range(5):
        dependencies.back("database")
    assert dependencies.status()["status"] == "ok"
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200) | st.text(max_size=200).map(str.encode), model=st.text(max_size=20))
def test_no_row_content_makes_the_relay_raise(payload: bytes, model: str) -> None:
    found = malformed(OutboxMessage(1, model, "model_created", payload))
    assert found is None or found.startswith(("invalid_event", "model_mismatch"))
