"""Resolve answered in the ASGI layer: the call every model server polls, without the framework's cost.

FastAPI's routing, dependencies and response handling cost several times the work of the answer itself
(one counter read and cached bytes, see :mod:`.resolve_cache`). This middleware answers
``GET /models/{name}/aliases/{alias}`` itself when the caller may read and the alias resolves; anything
else (no or bad token, unknown model or alias, every other route) goes on to the FastAPI app, whose
``resolve_alias`` route documents the call and gives the same body and the same errors.

The other reads a client repeats the same way are answered here too, from the same cache (as current as
the database): ``GET /models/{name}/versions/{v}`` and MLflow's get-by-alias and get-version
(docs/mlflow.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable
from urllib.parse import parse_qs

from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.domain.auth import authenticate
from services.registry.domain.mlflow_mapping import version_json, version_number
from services.registry.domain.schemas import MAX_ID
from services.registry.entrypoints.deps import Registry
from services.registry.errors import RegistryError

_RESOLVE_PATH = re.compile(r"/models/([^/]+)/aliases/([^/]+)")
_VERSION_PATH = re.compile(r"/models/([^/]+)/versions/([1-9][0-9]{0,18})")
_MODEL_VERSIONS_PATH = re.compile(r"/models/([^/]+)/versions")
_MLFLOW_ALIAS = "/api/2.0/mlflow/registered-models/alias"
_MLFLOW_SEARCH = "/api/2.0/mlflow/model-versions/search"
_MLFLOW_VERSION = "/api/2.0/mlflow/model-versions/get"
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
        """The cached body, or None to let the app answer (it also reports every error)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        path = path[len(root) :] if root and path.startswith(root) else path
        read = _read_for(path, scope.get("query_string", b""))
        if read is None:
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
            return read(registry)
        except (RegistryError, SQLAlchemyError):
            return None  # the app answers, with the same error (a 503 while the database is away, a 422
            # for a name PostgreSQL cannot hold)


def _read_for(path: str, query: bytes) -> Callable[[Registry], bytes] | None:
    """How to answer ``path`` from the cache, or None when it is not one of the cached reads."""
    if match := _RESOLVE_PATH.fullmatch(path):
        name, alias = match[1], match[2]
        return lambda registry: registry.resolve_cache.resolve_json(name, alias)
    if (match := _VERSION_PATH.fullmatch(path)) and int(match[2]) <= MAX_ID:
        name, number = match[1], int(match[2])

        def version(registry: Registry) -> bytes:
            def build() -> bytes:
                found = registry.store.get_version(name, number)
                return found.__pydantic_serializer__.to_json(found)

            return registry.resolve_cache.cached_json(("version", name, number), build)

        return version
    if path == "/versions" or _MODEL_VERSIONS_PATH.fullmatch(path):
        return _search_for(path, query)
    if path not in (_MLFLOW_ALIAS, _MLFLOW_VERSION, _MLFLOW_SEARCH):
        return None
    args = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    if path == _MLFLOW_SEARCH:  # a search is built by the route, in a worker thread; cached bodies here
        return lambda registry: _peek(registry, search_key(path, query))
    name = args.get("name", "")
    if path == _MLFLOW_ALIAS and name and args.get("alias"):
        alias = args["alias"]

        def by_alias(registry: Registry) -> bytes:
            def build() -> bytes:
                number = registry.store.get_model(name).aliases.get(alias)
                if number is None:
                    raise RegistryError("no such alias")  # the app answers RESOURCE_DOES_NOT_EXIST
                return _mlflow_body(registry, name, number)

            return registry.resolve_cache.cached_json(("mlflow-alias", name, alias), build)

        return by_alias
    if path == _MLFLOW_VERSION and name and args.get("version"):
        try:
            number = version_number(args["version"])
        except RegistryError:
            return None

        def by_number(registry: Registry) -> bytes:
            return registry.resolve_cache.cached_json(
                ("mlflow-version", name, number), lambda: _mlflow_body(registry, name, number)
            )

        return by_number
    return None


def _search_for(path: str, query: bytes) -> Callable[[Registry], bytes] | None:
    """A native version search (``GET /versions``, ``GET /models/{name}/versions``) if it is cached; the
    route builds (and caches) the others in a worker thread, so a search never holds up the event loop."""
    return lambda registry: _peek(registry, search_key(path, query))


def search_key(path: str, query: bytes) -> tuple[str, str, bytes]:
    """The cache key of a search: its path and query string, as the route and this middleware see them."""
    return ("search", path, query)


def _peek(registry: Registry, key: Hashable) -> bytes:
    body = registry.resolve_cache.peek(key)
    if body is None:
        raise NotCached("not cached")
    return body


class NotCached(RegistryError):
    """Not in the cache: the app answers (and caches the answer)."""


def _mlflow_body(registry: Registry, name: str, number: int) -> bytes:
    return json.dumps({"model_version": version_json(registry.store.get_version(name, number))}).encode()
