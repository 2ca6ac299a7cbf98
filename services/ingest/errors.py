"""The ingest service's exceptions: one base, a few named cases the API turns into status codes."""

from __future__ import annotations


class IngestError(Exception):
    """Base of every ingest error."""


class KafkaUnavailableError(IngestError):
    """Kafka did not acknowledge in time; nothing in the request counts as accepted (HTTP 503)."""


class BodyTooLargeError(IngestError):
    """The request is over a size limit (HTTP 413); the message says which limit and how to split."""


class UnsupportedMediaTypeError(IngestError):
    """The body's Content-Type is not one the route reads (HTTP 415); the message lists the accepted ones."""
