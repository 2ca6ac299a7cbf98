"""Deciding, event by event, whether input may enter the pipeline, and explaining why not. No I/O.

Used by both the HTTP endpoints (a rejection becomes a 422 item) and the stream validator (a
rejection becomes a dead-letter record). Decoding uses the msgspec fast path; only rejected items pay
for pydantic's complete, per-field error list.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec
from pydantic import ValidationError

from services.ingest.quality import QualityCounter
from services.ingest.schemas import FeatureIssueLike, SchemaLookup, SchemaSource
from shared import wire
from shared.events import LabelLogged, PredictionLogged

MAX_FIELD_ERRORS = 20
MAX_EVENT_BYTES = 800 * 1024
"""Largest event that still fits one Kafka message (the broker's default limit is 1 MiB)."""

REJECTING_ISSUES = {"type_error": "feature_type_error", "unknown_feature": "unknown_feature"}
"""Feature-schema issues that keep an event out (reason they get); missing, out-of-range and unseen
categories are facts about production data, so those events pass and are counted as data quality."""


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


@dataclass
class BatchResult:
    """Accepted events and rejections, each with the index of its input."""

    accepted: list[tuple[int, Wire]] = field(default_factory=list)
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)


class _ModelNameOnly(msgspec.Struct):
    model_name: str = "unknown"


_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")
_UNION_MEMBER = re.compile(r"^(bool|int|float|str|none|.*\[.*\])$")
_MODEL_NAME = re.compile(rb'"model_name"\s*:\s*"([^"\\]{1,200})"')
_NON_FINITE = re.compile(rb"\b(?:-?Infinity|NaN)\b")


def _model_name_of(payload: bytes) -> str:
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
    return ()


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
                "non_finite_number", detail, _model_name_of(payload), errors or (FieldError("body", detail),)
            )
        return Rejection("invalid_json", str(exc), _model_name_of(payload), (FieldError("body", str(exc)),))


def _rejection(kind: EventKind, payload: bytes, reason: str, message: str) -> Rejection:
    errors = _pydantic_errors(kind, payload)
    if not errors:  # the contracts agree on validity; keep msgspec's word and its path
        match = _PATH.search(message)
        errors = (FieldError(match.group("path") if match else "body", message),)
    if any("finite" in e.message for e in errors):
        reason = "non_finite_number"
    return Rejection(reason, message, _model_name_of(payload), errors)


def check_registry(
    event: Wire, lookup: SchemaLookup, *, reject_unknown_models: bool
) -> tuple[Sequence[FeatureIssueLike] | None, Rejection | None]:
    """Feature issues of a prediction against its model's registered schema (None when no schema)."""
    if lookup.status == "unknown_model" and reject_unknown_models:
        detail = f"model {event.model_name!r} is not registered; register it in the registry first"
        return None, Rejection("unknown_model", detail, event.model_name, (FieldError("model_name", detail),))
    if lookup.check is None or not isinstance(event, wire.PredictionWire):
        return None, None
    issues = lookup.check(event.features)
    refusing = [issue for issue in issues if str(issue.kind) in REJECTING_ISSUES]
    if not refusing:
        return issues, None
    errors = tuple(FieldError(f"features.{i.feature}", i.detail) for i in refusing[:MAX_FIELD_ERRORS])
    reason = REJECTING_ISSUES[str(refusing[0].kind)]
    return issues, Rejection(reason, "; ".join(e.message for e in errors), event.model_name, errors)


async def validate_batch(
    kind: EventKind,
    payloads: Sequence[bytes],
    schemas: SchemaSource,
    *,
    reject_unknown_models: bool,
    quality: QualityCounter | None = None,
) -> BatchResult:
    """Decode every payload, look up each model's schema once, check features, count data quality."""
    result = BatchResult()
    decoded: list[tuple[int, Wire]] = []
    for index, payload in enumerate(payloads):
        if len(payload) > MAX_EVENT_BYTES:
            detail = f"event of {len(payload)} bytes is over the {MAX_EVENT_BYTES}-byte limit of one event"
            result.rejected.append(
                (index, Rejection("event_too_large", detail, errors=(FieldError("body", detail),)))
            )
            continue
        outcome = decode(kind, payload)
        if isinstance(outcome, Rejection):
            result.rejected.append((index, outcome))
        else:
            decoded.append((index, outcome))
    names = sorted({event.model_name for _, event in decoded})
    lookups = dict(zip(names, await asyncio.gather(*(schemas.lookup(n) for n in names)), strict=True))
    for index, event in decoded:
        issues, rejection = check_registry(
            event, lookups[event.model_name], reject_unknown_models=reject_unknown_models
        )
        if (
            quality is not None
            and isinstance(event, wire.PredictionWire)
            and (rejection is None or rejection.reason != "unknown_model")
        ):
            lookup = lookups[event.model_name]
            quality.add(event.model_name, event.model_version, event.features, issues, lookup.feature_names)
        if rejection is None:
            result.accepted.append((index, event))
        else:
            result.rejected.append((index, rejection))
    result.rejected.sort(key=lambda item: item[0])
    return result
