"""Turns an app's arguments into the JSON of PredictionLogged / LabelLogged, on the caller's thread, fast.

Uses the msgspec wire structs (``shared.wire``), which write the same JSON as the pydantic contract.
Values are not validated here (the stream validator does that once, with dead-lettering); numpy scalars
and arrays are accepted because model code is full of them, and a NaN feature becomes missing (null).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.sdk.spool import Record
from shared.wire import LabelWire, PredictionWire

PREDICTIONS = 0
LABELS = 1


def _numpy_hook(obj: Any) -> Any:
    """numpy scalars → Python numbers, arrays → lists; anything else is the caller's bug."""
    if hasattr(obj, "dtype"):
        if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
            return obj.item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
    raise TypeError(
        f"cannot log a value of type {type(obj).__name__}; use numbers, strings, booleans or None"
    )


_encoder = msgspec.json.Encoder(enc_hook=_numpy_hook)

# uuid.uuid4() costs a getrandom() syscall and UUID.__init__'s checks per event, a large share of the SDK's
# time on the app's thread. Version-4 ids from a generator seeded by the OS (reseeded in forked children)
# are as unique for deduplication; the UUID is filled in directly and msgspec writes its text in C.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)
_new_object = object.__new__
_set = object.__setattr__


def new_event_id() -> uuid.UUID:
    """A random RFC 4122 version-4 UUID, several times cheaper than :func:`uuid.uuid4`."""
    event_id = _new_object(uuid.UUID)
    _set(event_id, "int", (_ids.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS)
    _set(event_id, "is_safe", uuid.SafeUUID.unknown)
    return event_id


def new_prediction_id() -> str:
    """32 random hex digits: a prediction id for apps that do not bring their own."""
    return _ids.randbytes(16).hex()


def prediction_record(
    model_name: str,
    model_version: str,
    features: Mapping[str, Any],
    prediction: Any,
    *,
    prediction_id: str | None = None,
    probabilities: Mapping[Any, Any] | None = None,
    latency_ms: float | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> tuple[Record, str]:
    """The Kafka record of one prediction and its ``prediction_id`` (generated when not given)."""
    pid = prediction_id if prediction_id is not None else new_prediction_id()
    # the struct is only encoded, never validated (the stream validator does that once)
    event = PredictionWire(
        event_id=event_id or new_event_id(),
        model_name=model_name,
        model_version=str(model_version),
        prediction_id=pid,
        features=features,  # type: ignore[arg-type]
        prediction=prediction,
        probabilities=probabilities,  # type: ignore[arg-type]
        latency_ms=latency_ms,
        occurred_at=occurred_at if occurred_at is not None else datetime.now(UTC),
    )
    return Record(PREDICTIONS, model_name.encode(), _encoder.encode(event)), pid


def label_record(
    model_name: str,
    prediction_id: str,
    label: Any,
    *,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> Record:
    """The Kafka record of one ground-truth label."""
    event = LabelWire(
        event_id=event_id or new_event_id(),
        model_name=model_name,
        prediction_id=prediction_id,
        label=label,
        occurred_at=occurred_at if occurred_at is not None else datetime.now(UTC),
    )
    return Record(LABELS, model_name.encode(), _encoder.encode(event))
