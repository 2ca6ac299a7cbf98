"""The msgspec fast path must agree with the pydantic contract: same bytes, same accept/reject."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from driftloop.bench.events import sample_prediction_fields
from shared import codec, wire
from shared.events import LabelLogged, PredictionLogged


@pytest.mark.parametrize("seed", range(20))
def test_prediction_bytes_are_identical_in_both_codecs(seed: int) -> None:
    fields = sample_prediction_fields(random.Random(seed))
    fast = wire.PredictionWire(**fields)
    contract = PredictionLogged(
        **fields, event_id=fast.event_id, occurred_at=fast.occurred_at, schema_version=fast.schema_version
    )
    assert wire.encode(fast) == codec.encode(contract)
    assert codec.decode(wire.encode(fast), PredictionLogged) == contract
    assert wire.decode_prediction(codec.encode(contract)) == fast


def test_label_bytes_are_identical_in_both_codecs() -> None:
    fast = wire.LabelWire(model_name="m", prediction_id="p-9", label=True)
    contract = LabelLogged(
        model_name="m", prediction_id="p-9", label=True, event_id=fast.event_id, occurred_at=fast.occurred_at
    )
    assert wire.encode(fast) == codec.encode(contract)
    assert wire.decode_label(codec.encode(contract)) == fast


def _valid() -> dict[str, object]:
    return json.loads(wire.encode(wire.PredictionWire(**sample_prediction_fields(random.Random(1)))))


BAD_DOCUMENTS = [
    b"",
    b"not json",
    b'{"event_type": "prediction_logged"',
    json.dumps(_valid() | {"features": {"age": "NaN"}}).replace('"NaN"', "NaN").encode(),
    json.dumps(_valid() | {"features": {"age": {"nested": 1}}}).encode(),
    json.dumps(_valid() | {"features": ["a", "b"]}).encode(),
    json.dumps(_valid() | {"model_name": ""}).encode(),
    json.dumps(_valid() | {"model_name": 7}).encode(),
    json.dumps(_valid() | {"latency_ms": -3}).encode(),
    json.dumps(_valid() | {"event_id": "not-a-uuid"}).encode(),
    json.dumps(_valid() | {"occurred_at": "yesterday"}).encode(),
    json.dumps(_valid() | {"extra_field": 1}).encode(),
    json.dumps(_valid() | {"event_type": "label_logged"}).encode(),
    json.dumps({k: v for k, v in _valid().items() if k != "prediction_id"}).encode(),
]


@pytest.mark.parametrize("document", BAD_DOCUMENTS)
def test_both_codecs_refuse_the_same_bad_documents(document: bytes) -> None:
    with pytest.raises(ValidationError):
        PredictionLogged.model_validate_json(document)
    with pytest.raises(wire.WireError):
        wire.decode_prediction(document)


def test_naive_timestamps_are_utc_in_both_codecs() -> None:
    doc = _valid() | {"occurred_at": "2026-03-01T10:00:00"}
    data = json.dumps(doc).encode()
    assert wire.decode_prediction(data).occurred_at == PredictionLogged.model_validate_json(data).occurred_at
