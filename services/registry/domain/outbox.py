"""Outbox rows as the relay sees them, and which of them may go out: a row that is not an event of the
contract is refused, and a model's rows after a refused one wait, so its order holds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from shared.codec import decode_any

OUTBOX_MAX_ATTEMPTS = 5
"""Failed attempts (the row's own fault) before an outbox row is set aside as failed."""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    model_name: str
    event_type: str
    payload: bytes
    attempts: int = 0


@dataclass
class Published:
    """What one publish did: rows Kafka acknowledged, and rows it refused for what they are (id → reason).
    Rows in neither were not sent (a model's rows after its refused one wait, to keep its order)."""

    sent: list[int]
    rejected: dict[int, str]


Publish = Callable[[Sequence[OutboxMessage]], Awaitable[Published]]


def malformed(message: OutboxMessage) -> str | None:
    """Why a row cannot be announced as it is (not an event of the contract, or keyed by another model)."""
    try:
        event = decode_any(message.payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        text = errors[0]["msg"] if errors else str(exc)
        return f"invalid_event: {where + ': ' if where else ''}{text}"[:2000]
    except (OverflowError, ValueError) as exc:
        return f"invalid_event: {exc}"[:2000]
    if event.model_name != message.model_name:
        return (
            f"model_mismatch: the event is about {event.model_name!r}, the row about {message.model_name!r}"
        )
    return None


def sendable(messages: Sequence[OutboxMessage], refused: dict[int, str]) -> list[OutboxMessage]:
    """The rows to send: not refused themselves, and not after a refused row of the same model (order)."""
    held: set[str] = set()
    out = []
    for message in messages:
        if message.id in refused or message.model_name in held:
            held.add(message.model_name)
            continue
        out.append(message)
    return out
