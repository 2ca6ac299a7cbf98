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
