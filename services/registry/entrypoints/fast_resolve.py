"""Resolve answered in the ASGI layer: the call every model server polls, without the framework's cost.

FastAPI's routing, dependencies and response handling cost several times the work of the answer itself
(one counter read and cached bytes, see :mod:`.resolve_cache`). This middleware answers
``GET /models/{name}/aliases/{alias}`` itself when the caller may read and the alias resolves; anything
else (no or bad token, unknown model or alias, every other route) goes on to the FastAPI app, whose
``resolve_alias`` route documents the call and gives the same body and the same errors.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.domain.auth import authenticate
from services.registry.entrypoints.deps import Registry
from services.registry.errors import RegistryError

_RESOLVE_PATH = re.compile(r"/models/([^/]+)/aliases/([^/]+)")
_JSON = (b"content-type", b"application/json")


class ResolveFastPath:
    """ASGI middleware; ``state.registry`` is read per request because the lifespan builds it."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._answer(scope)
            if body is not None:
                headers = [_JSON, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        """The resolved alias's body, or None to let the app answer (it also reports every error)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        match = _RESOLVE_PATH.fullmatch(path[len(root) :] if root and path.startswith(root) else path)
        if match is None:
            return None
        registry: Registry | None = getattr(self.state, "registry", None)
        if registry is None:
            return None  # not started yet: the app answers 503
        settings = registry.settings
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        try:
            authenticate(
                authorization,
                registry.principals,
                open_reads=settings.registry_open_reads,
                anonymous_writes=settings.registry_allow_anonymous_writes,
            )
            return registry.resolve_cache.resolve_json(match[1], match[2])
        except (RegistryError, SQLAlchemyError):
            return None  # the app answers, with the same error (a 503 while the database is away, a 422
            # for a name PostgreSQL cannot hold)
