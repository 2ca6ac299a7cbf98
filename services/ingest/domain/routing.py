"""Where each event of a validated stream batch goes: valid ones re-encoded, rejects dead-lettered. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.ingest.domain.validation import BatchResult, Rejection
from shared import codec, wire
from shared.events import EventDeadLettered
from shared.validation import dead_letter

KeyedRecord = tuple[str, bytes, bytes]
"""(topic, key, value): ``shared.sdk.batches.KeyedRecord``, named here without importing the Kafka client."""

EMPTY = Rejection("empty_message", "the Kafka message has no value (tombstone)")


@dataclass(frozen=True)
class RawMessage:
    """A consumed message: where it came from and its exact bytes (None for a Kafka tombstone)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


def route(
    source_topic: str,
    messages: Sequence[RawMessage],
    result: BatchResult,
    *,
    valid_topic: str,
    dead_letter_topic: str,
) -> tuple[list[KeyedRecord], list[EventDeadLettered]]:
    """Kafka records for a validated batch: valid events re-encoded (defaults filled), rejects dead-lettered."""
    records: list[KeyedRecord] = []
    letters: list[EventDeadLettered] = []
    for _, event in result.accepted:
        records.append((valid_topic, event.model_name.encode(), wire.encode(event)))
    for index, rejection in result.rejected:
        message = messages[index]
        letter = dead_letter(source_topic, message.partition, message.offset, message.value, rejection)
        letters.append(letter)
        records.append((dead_letter_topic, letter.key, codec.encode(letter)))
    return records, letters
