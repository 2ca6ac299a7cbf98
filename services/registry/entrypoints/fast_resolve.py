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

import functools
import re
from collections.abc import Callable, Hashable
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.adapters.store_base import MAX_PAGE
from services.registry.adapters.store_versions import get_version_json_query
from services.registry.domain.auth import authenticate
from services.registry.domain.mlflow_mapping import version_number
from services.registry.domain.schemas import MAX_ID
from services.registry.entrypoints import mlflow_search
from services.registry.entrypoints.deps import Registry
from services.registry.entrypoints.mlflow_common import query_params
from services.registry.errors import RegistryError
from shared.events import VersionStatus

_RESOLVE_PATH = re.compile(r"/models/([^/]+)/aliases/([^/]+)")
_VERSION_PATH = re.compile(r"/models/([^/]+)/versions/([1-9][0-9]{0,18})")
_MODEL_VERSIONS_PATH = re.compile(r"/models/([^/]+)/versions")
_MLFLOW_ALIAS = "/api/2.0/mlflow/registered-models/alias"
_MLFLOW_SEARCH = "/api/2.0/mlflow/model-versions/search"
_MLFLOW_VERSION = "/api/2.0/mlflow/model-versions/get"
_MLFLOW_READS = frozenset({_MLFLOW_ALIAS, _MLFLOW_VERSION, _MLFLOW_SEARCH})
_JSON = (b"content-type", b"application/json")


class ResolveFastPath:
    """ASGI middleware; ``state.registry`` is read per request because the lifespan builds it."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._answer(scope)
            if body is None:
                body = await self._search(scope)
            if body is not None:
                headers = [_JSON, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _search(self, scope: Scope) -> bytes | None:
        """A version search the cache does not hold (native, or MLflow's GET without a body), built in a
        worker thread as the route builds it (and kept for the next identical one); None for anything else,
        an argument the route would refuse, or an error: the app answers those."""
        path = _relative(scope)
        query: bytes = scope.get("query_string", b"")
        registry: Registry | None = getattr(self.state, "registry", None)
        if registry is None:
            return None
        build: Callable[[], bytes]
        if path == _MLFLOW_SEARCH:
            params = query_params(query)
            if params is None or _has_body(scope):
                return None
            build = functools.partial(mlflow_search.search_page, registry, params)
        else:
            args = search_args(path, query)
            if args is None:
                return None
            build = functools.partial(registry.store.search_versions_json, **args)
        try:
            self._caller(scope, registry)
            cached = registry.resolve_cache.cached_json
            body: bytes = await run_in_threadpool(cached, search_key(path, query), build)
        except (RegistryError, SQLAlchemyError):
            return None
        return body

    def _answer(self, scope: Scope) -> bytes | None:
        """The cached body, or None to let the app answer (it also reports every error)."""
        read = _read_for(_relative(scope), scope.get("query_string", b""))
        if read is None:
            return None
        registry: Registry | None = getattr(self.state, "registry", None)
        if registry is None:
            return None  # not started yet: the app answers 503
        try:
            self._caller(scope, registry)
            return read(registry)
        except (RegistryError, SQLAlchemyError):
            return None  # the app answers, with the same error (a 503 while the database is away, a 422
            # for a name PostgreSQL cannot hold)

    @staticmethod
    def _caller(scope: Scope, registry: Registry) -> None:
        """Raises unless the caller may read (the app then answers 401)."""
        settings = registry.settings
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        authenticate(
            authorization,
            registry.principals,
            open_reads=settings.registry_open_reads,
            anonymous_writes=settings.registry_allow_anonymous_writes,
        )


def _has_body(scope: Scope) -> bool:
    """Whether the request says it carries a body (MLflow's route reads arguments from it too)."""
    for key, value in scope["headers"]:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


def _relative(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


_LIMIT = re.compile(r"[1-9][0-9]{0,3}")
_STATUSES = {s.value: s for s in VersionStatus}


def search_args(path: str, query: bytes) -> dict[str, Any] | None:
    """The arguments ``routes_versions.search_versions``/``list_versions`` would get from ``path`` and
    ``query``, or None when the route has to judge them (a value it refuses, a repeated argument)."""
    if path == "/versions":
        args: dict[str, Any] = {"name_prefix": ""}
    elif match := _MODEL_VERSIONS_PATH.fullmatch(path):
        args = {"name": match[1]}
    else:
        return None
    tags: list[str] = []
    seen: set[str] = set()
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "tag":
            tags.append(value)
            continue
        if key in seen:
            return None
        seen.add(key)
        if key == "name_prefix" and "name_prefix" in args:
            args["name_prefix"] = value
        elif key == "status":
            if value not in _STATUSES:
                return None
            args["status"] = _STATUSES[value]
        elif key == "limit":
            if not _LIMIT.fullmatch(value) or int(value) > MAX_PAGE:
                return None
            args["limit"] = int(value)
        elif key == "page_token":
            args["page_token"] = value
    return {**args, "tags": tags}


def _read_for(path: str, query: bytes) -> Callable[[Registry], bytes] | None:
    """How to answer ``path`` from the cache, or None when it is not one of the cached reads."""
    if path in _MLFLOW_READS:
        return _mlflow_read_for(path, query)
    if match := _RESOLVE_PATH.fullmatch(path):
        name, alias = match[1], match[2]
        return lambda registry: registry.resolve_cache.resolve_json(name, alias)
    if (match := _VERSION_PATH.fullmatch(path)) and int(match[2]) <= MAX_ID:
        name, number = match[1], int(match[2])

        def version(registry: Registry) -> bytes:
            return registry.resolve_cache.cached_json(
                ("version", name, number), lambda: _version_json(registry, name, number)
            )

        return version
    if path == "/versions" or _MODEL_VERSIONS_PATH.fullmatch(path):
        return _search_for(path, query)
    return None


def _mlflow_read_for(path: str, query: bytes) -> Callable[[Registry], bytes] | None:
    """:func:`_read_for` of MLflow's cached reads (get-by-alias, get-version, search)."""
    args = _query_args(query)
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


def _query_args(query: bytes) -> dict[str, str]:
    """The query's arguments as ``parse_qs`` gives them (blank ones left out, the last of a repeated one),
    split by hand when nothing in it is encoded: the common case, a third of a cached read's time.

    >>> _query_args(b"name=churn&version=3&version=4&alias=") == _query_args(b"name=ch%75rn&version=4")
    True
    """
    text = query.decode("latin-1")
    if "%" in text or "+" in text:
        return {k: v[-1] for k, v in parse_qs(text).items()}
    args = {}
    for pair in text.split("&"):
        key, sep, value = pair.partition("=")
        if sep and value:
            args[key] = value
    return args


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


def _version_json(registry: Registry, name: str, number: int, *, mlflow: bool = False) -> bytes:
    """The version as ``GET /models/{name}/versions/{v}`` answers it (with ``mlflow``, MLflow's
    ``ModelVersion``), written by the database in one read on the cache's connection; :class:`NotCached`
    when there is none (the app answers the 404)."""
    query = get_version_json_query(registry.engine.dialect.name, mlflow)
    item = registry.resolve_cache.read_value(query, {"name": name, "version": number})
    if item is None:
        raise NotCached("no such version")
    return str(item).encode()


def _mlflow_body(registry: Registry, name: str, number: int) -> bytes:
    """MLflow's get-version answer."""
    return b'{"model_version":' + _version_json(registry, name, number, mlflow=True) + b"}"
