"""The model server's exceptions: one base, a subclass per thing that can go wrong while serving."""

from __future__ import annotations


class ServingError(Exception):
    """Base of the model server's errors; the message says what to check."""


class ModelLoadError(ServingError):
    """A version could not be fetched, verified or unpickled; the previous model keeps serving."""


class NoModelLoaded(ServingError):
    """No version is loaded yet (the alias was never resolvable); requests get 503 until one is."""


class InvalidFeatures(ServingError):
    """The request's features cannot be fed to the model; ``issues`` names each offending feature."""

    def __init__(self, message: str, issues: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.issues = issues


class InvalidRequest(ServingError):
    """A request the server cannot read: wrong Content-Type (415), too large (413) or malformed (422)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = "body",
        issues: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.field, self.issues = status, code, field, issues
