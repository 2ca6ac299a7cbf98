"""Which model events may move what a server serves, and reading them from any bytes a topic holds."""

from __future__ import annotations

from pydantic import ValidationError

from shared.codec import decode_any
from shared.events import AliasChanged, Event, ModelDeleted, ModelVersionStatusChanged


def concerns(event: Event, model_name: str, alias: str) -> bool:
    """Does ``event`` possibly change what ``model_name@alias`` should serve?"""
    if event.model_name != model_name:
        return False
    if isinstance(event, AliasChanged):
        return event.alias == alias
    return isinstance(event, ModelVersionStatusChanged | ModelDeleted)


def read_event(value: bytes | None) -> Event | str:
    """The event in a model-events record, or why it is not one (any bytes, None included, are data)."""
    if not value:
        return "empty record"
    try:
        return decode_any(value)
    except ValidationError as exc:
        return f"not a model event ({exc.error_count()} errors, first: {exc.errors()[0]['msg']})"
    except ValueError as exc:  # e.g. bytes that are not UTF-8
        return f"not a model event ({type(exc).__name__})"
