"""Bytes on the wire: JSON encoding and validated decoding of events, one at a time or in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Annotated, TypeVar, Union

from pydantic import Field, TypeAdapter

from shared.events import EVENT_TYPES, Event

E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    """The event as compact UTF-8 JSON."""
    return event.__pydantic_serializer__.to_json(event)


def encode_many(events: Iterable[Event]) -> list[bytes]:
    return [e.__pydantic_serializer__.to_json(e) for e in events]


def decode(data: bytes | str, event_type: type[E]) -> E:
    """Parse and validate one event of a known type; raises ``pydantic.ValidationError`` naming the field."""
    return event_type.model_validate_json(data)


@cache
def _any_event_adapter() -> TypeAdapter[Event]:
    union = Annotated[Union[EVENT_TYPES], Field(discriminator="event_type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union)


def decode_any(data: bytes | str) -> Event:
    """Parse an event of any type, picked by its ``event_type`` field."""
    return _any_event_adapter().validate_json(data)


def decode_many(payloads: Sequence[bytes], event_type: type[E]) -> list[E]:
    """Decode a batch of one event type; raises on the first invalid payload (use per-item decode to split)."""
    validate = event_type.model_validate_json
    return [validate(p) for p in payloads]
