"""Property tests: random JSON and random bytes never produce a 5xx or a crash, and every input is explained."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.bootstrap import bootstrap
from services.ingest.domain.routing import RawMessage
from services.ingest.entrypoints.http import create_app
from services.ingest.entrypoints.stream import StreamValidator
from shared.events import EventDeadLettered
from shared.settings import Settings
from shared.topics import topic_names
from tests.unit.ingest_fakes import API_KEY, MemoryWriter, schema_source

ENDPOINTS = ("/v1/predictions", "/v1/predictions/batch", "/v1/labels", "/v1/labels/batch")
TOPICS = topic_names("")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
feature_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | json_values
event_like = st.fixed_dictionaries(
    {},
    optional={
        "model_name": st.sampled_from(["churn", "legacy", "ghost", ""]) | st.text(max_size=3),
        "model_version": st.text(max_size=3) | st.integers(),
        "prediction_id": st.text(max_size=4),
        "features": st.dictionaries(st.sampled_from(["age", "plan", "x"]), feature_values, max_size=3)
        | json_values,
        "prediction": feature_values,
        "label": feature_values,
        "probabilities": st.dictionaries(st.text(max_size=2), st.floats(), max_size=2) | json_values,
        "event_id": st.uuids().map(str) | st.text(max_size=4),
        "occurred_at": st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=5),
        "latency_ms": st.floats() | st.integers(),
        "extra": json_values,
    },
)


def _encode(value: Any) -> bytes:
    # json.dumps writes NaN/Infinity tokens, exactly what careless producers send
    return json.dumps(value).encode()


bodies = (
    st.binary(max_size=300)
    | json_values.map(_encode)
    | event_like.map(_encode)
    | st.lists(event_like, max_size=5).map(_encode)
    | st.lists(event_like.map(_encode), max_size=5).map(lambda lines: b"\n".join(lines))
)


def _client() -> TestClient:
    app = create_app(
        bootstrap(
            Settings(ingest_api_keys={API_KEY: "fuzz"}), schemas=schema_source(), writer=MemoryWriter()
        ),
        run_validator=False,
    )
    return TestClient(app)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, endpoint=st.sampled_from(ENDPOINTS), ndjson=st.booleans())
def test_http_endpoints_accept_or_explain_anything(body: bytes, endpoint: str, ndjson: bool) -> None:
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/x-ndjson" if ndjson else "application/json"}
    with _client() as client:
        response = client.post(endpoint, content=body, headers=headers)
    if ndjson and "batch" not in endpoint:  # a single event is JSON only
        assert response.status_code == 415 and "application/json" in response.json()["detail"]
        return
    assert response.status_code in (202, 413, 422), response.text
    report = response.json()
    if response.status_code == 413:
        return
    if not body:  # nothing to count: the one error says so (curl sends this when it cannot read @FILE)
        assert response.status_code == 422 and [e["reason"] for e in report["errors"]] == ["empty_body"]
        return
    assert report["accepted"] + report["rejected"] >= (1 if "batch" not in endpoint else 0)
    for error in report["errors"]:
        assert error["reason"] and error["fields"], error
        assert all(f["field"] and f["message"] for f in error["fields"])


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(bodies | st.none(), min_size=1, max_size=8), labels=st.booleans())
def test_stream_validator_forwards_or_dead_letters_everything(
    payloads: list[bytes | None], labels: bool
) -> None:
    validator = StreamValidator(bootstrap(Settings(), schemas=schema_source(), writer=MemoryWriter()))
    source = TOPICS.labels_raw if labels else TOPICS.predictions_raw
    messages = [RawMessage(0, offset, value) for offset, value in enumerate(payloads)]
    records = asyncio.run(validator.validate(source, messages))
    valid = [r for r in records if r[0] == (TOPICS.labels if labels else TOPICS.predictions)]
    letters = [msgspec.json.decode(r[2]) for r in records if r[0] == TOPICS.dead_letter]
    assert len(valid) + len(letters) == len(payloads)
    for letter in letters:
        parsed = EventDeadLettered.model_validate(letter)
        assert parsed.reason and parsed.source == f"topic:{source}"
        assert parsed.original == (payloads[parsed.source_offset or 0] or b"")
