"""Deciding, event by event, whether input may enter the pipeline, and explaining why not. No I/O.

Used by both the HTTP endpoints (a rejection becomes a 422 item) and the stream validator (a
rejection becomes a dead-letter record). The event itself is checked by ``shared.validation``, the one
contract the monitor checks too; this module adds what needs the registry: the model's feature schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.ingest.domain.quality import QualityCounter
from services.ingest.domain.schemas import FeatureIssueLike, SchemaLookup, SchemaSource
from shared import wire
from shared.feature_schema import REJECTING_ISSUES, IssueKind, describe_issues
from shared.validation import (
    MAX_FIELD_ERRORS,
    EventKind,
    EventTimeBounds,
    FieldError,
    Origin,
    Rejection,
    Wire,
    validate,
)

__all__ = [
    "BatchResult",
    "EventKind",
    "EventTimeBounds",
    "FieldError",
    "Origin",
    "Rejection",
    "validate_batch",
]


@dataclass
class BatchResult:
    """Accepted events and rejections, each with the index of its input."""

    accepted: list[tuple[int, Wire]] = field(default_factory=list)
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)


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
    reason = REJECTING_ISSUES[IssueKind(str(refusing[0].kind))]
    return issues, Rejection(reason, describe_issues(refusing), event.model_name, errors)


async def validate_batch(
    kind: EventKind,
    payloads: Sequence[bytes],
    schemas: SchemaSource,
    *,
    reject_unknown_models: bool,
    quality: QualityCounter | None = None,
    bounds: EventTimeBounds | None = None,
    origins: Sequence[Origin] | None = None,
) -> BatchResult:
    """Decode every payload, look up each model's schema once, check features, count data quality.

    ``origins`` (the Kafka records of a stream batch) give an event without id or time stable ones.
    """
    result = BatchResult()
    decoded: list[tuple[int, Wire]] = []
    bounds = bounds or EventTimeBounds()
    now = datetime.now(UTC)
    for index, payload in enumerate(payloads):
        outcome = validate(kind, payload, bounds, now, origins[index] if origins is not None else None)
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
