"""The fast path for the two high-volume events (predictions, labels): msgspec structs, same JSON.

``shared.events`` is the contract; these structs encode to the same JSON and accept
the same documents, at several times the speed (figures: ``driftloop bench events``, docs/sdk.md).
``tests/unit/test_wire_contract.py`` keeps the two in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from shared.events import SCHEMA_VERSION

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Version = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FeatureValue = bool | int | float | str | None


def _now() -> datetime:
    return datetime.now(UTC)


class PredictionWire(
    msgspec.Struct, forbid_unknown_fields=True, tag_field="event_type", tag="prediction_logged", kw_only=True
):
    """Wire form of ``shared.events.PredictionLogged``."""

    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    schema_version: Annotated[int, msgspec.Meta(ge=1)] = SCHEMA_VERSION
    occurred_at: datetime = msgspec.field(default_factory=_now)
    model_name: Name
    model_version: Version
    prediction_id: Id
    features: dict[str, FeatureValue]
    prediction: bool | int | float | str
    probabilities: dict[str, float] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0)] | None = None


class LabelWire(
    msgspec.Struct, forbid_unknown_fields=True, tag_field="event_type", tag="label_logged", kw_only=True
):
    """Wire form of ``shared.events.LabelLogged``."""

    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    schema_version: Annotated[int, msgspec.Meta(ge=1)] = SCHEMA_VERSION
    occurred_at: datetime = msgspec.field(default_factory=_now)
    model_name: Name
    prediction_id: Id
    label: bool | int | float | str


_encoder = msgspec.json.Encoder()
_prediction_decoder = msgspec.json.Decoder(PredictionWire)
_label_decoder = msgspec.json.Decoder(LabelWire)

WireError = msgspec.DecodeError
"""Raised for unparseable or invalid bytes; the message names the offending path (``$.features.age``)."""


def encode(event: PredictionWire | LabelWire) -> bytes:
    """Compact JSON; a NaN float is written as null, i.e. a NaN feature becomes a missing value."""
    return _encoder.encode(event)


def decode_prediction(data: bytes) -> PredictionWire:
    """Parse and validate a prediction; naive timestamps are taken as UTC."""
    event = _prediction_decoder.decode(data)
    if event.occurred_at.tzinfo is None:
        event.occurred_at = event.occurred_at.replace(tzinfo=UTC)
    return event


def decode_label(data: bytes) -> LabelWire:
    event = _label_decoder.decode(data)
    if event.occurred_at.tzinfo is None:
        event.occurred_at = event.occurred_at.replace(tzinfo=UTC)
    return event
