"""The registry's exceptions: one base, one subclass per HTTP outcome, each naming the offending field."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry reports to a caller; ``status`` is its HTTP status."""

    status = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(RegistryError):
    status = 404
    code = "not_found"


class Conflict(RegistryError):
    status = 409
    code = "conflict"


class Forbidden(RegistryError):
    status = 403
    code = "forbidden"


class Unauthenticated(RegistryError):
    """No credentials, or ones the registry does not know (RFC 9110: 401 with ``WWW-Authenticate``)."""

    status = 401
    code = "unauthenticated"
    headers = {"WWW-Authenticate": 'Bearer realm="driftloop-registry"'}


class Invalid(RegistryError):
    status = 422
    code = "invalid"


class Unavailable(RegistryError):
    """A dependency (the database) is away; the registry waits for it, the caller retries."""

    status = 503
    code = "unavailable"


class ArtifactCorrupted(RegistryError):
    """The stored artifact no longer matches the sha256 recorded at registration."""

    status = 409
    code = "artifact_corrupted"
