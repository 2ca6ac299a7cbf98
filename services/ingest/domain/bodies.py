"""Reading request bodies under a size limit and splitting batches into one payload per event.

A JSON array is split with ``msgspec.Raw`` (each item's exact bytes, no Python objects built), NDJSON
by lines, so each item is validated and reported on its own and the bytes stay the caller's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from services.ingest.errors import BodyTooLargeError, IngestError

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class NotABatchError(IngestError, ValueError):
    """The body of a batch request is neither a JSON array nor NDJSON."""


async def read_limited(stream: AsyncIterator[bytes], declared_length: str | None, limit: int) -> bytes:
    """The whole body, refusing early (by Content-Length) or while reading when it exceeds ``limit``."""
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise BodyTooLargeError(too_large_message(int(declared_length), limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(too_large_message(size, limit))
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_message(size: int, limit: int) -> str:
    return (
        f"request body of {size}+ bytes is over the {limit}-byte limit; split it into smaller batches "
        "(NDJSON batches stream well) or raise DRIFTLOOP_INGEST_MAX_BODY_BYTES"
    )


def media_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type header, lower case without parameters; None when absent or blank."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media or None


def is_ndjson(content_type: str | None) -> bool:
    return media_type(content_type) in NDJSON_TYPES


def split_batch(body: bytes, *, ndjson: bool, max_items: int) -> list[bytes]:
    """One payload per event; raises :class:`NotABatchError` or :class:`BodyTooLargeError`."""
    if ndjson:
        items = [line for line in body.split(b"\n") if line.strip()]
    else:
        try:
            items = [bytes(raw) for raw in _array_decoder.decode(body)]
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise NotABatchError(
                f"expected a JSON array of events, or NDJSON with Content-Type: application/x-ndjson ({exc})"
            ) from exc
    if len(items) > max_items:
        raise BodyTooLargeError(
            f"batch of {len(items)} events is over the {max_items}-event limit; split it into smaller batches"
        )
    return items
