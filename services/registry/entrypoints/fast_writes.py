"""Version registration answered in the ASGI layer: the hot write, without the framework's cost.

A registration's own work is about 2 ms (hash the artifact, seven statements in one transaction); FastAPI's
request handling, dependencies and validation around it cost as much again. This middleware answers
``POST /models/{name}/versions`` (JSON, by URI) and MLflow's ``POST .../model-versions/create`` itself,
calling the same store and route code as the app, in a worker thread: the caller is authorised with the
same tokens (writer role), the version is written, audited and announced on the outbox in the same
transaction, and the answer is the app's.

Anything it does not handle the plain way goes on to the FastAPI app with the body it read: a caller
without the writer role, a body the model does not accept, a version with a reference profile (checked
against the model's feature schema by the route), and every error (an unknown model, an artifact outside
the root, the database away). Nothing is committed before such an error, so the app runs the request
again from the start and answers with its usual error body (MLflow's shape on MLflow's paths).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.registry.domain.auth import Principal, Role, authenticate, require
from services.registry.domain.schemas import VersionCreate
from services.registry.entrypoints import mlflow_registry
from services.registry.entrypoints.mlflow_common import MAX_BODY, query_params
from services.registry.errors import RegistryError
from services.registry.service import Registry
from shared.artifacts import ArtifactError

_REGISTER_PATH = re.compile(r"/models/([^/]+)/versions")
_MLFLOW_CREATE = "/api/2.0/mlflow/model-versions/create"
_JSON = (b"content-type", b"application/json")

# what sends a request on to the app, which answers it with its own error body
_HANDED_ON = (RegistryError, SQLAlchemyError, ArtifactError, ValidationError, ValueError)

Answer = tuple[int, bytes]


class FastWrites:
    """ASGI middleware; ``state.registry`` is read per request because the lifespan builds it."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        write = _write_for(_path(scope), scope.get("query_string", b""))
        registry: Registry | None = getattr(self.state, "registry", None)
        if write is None or registry is None or not _json_body(scope):
            await self.app(scope, receive, send)
            return
        try:
            user = require(_caller(scope, registry), Role.WRITER)
        except RegistryError:
            await self.app(scope, receive, send)  # 401/403 from the app, without reading the body
            return
        body, whole = await _read_body(receive)
        if not whole:  # too large or the caller left: the app reads the rest and answers
            await self.app(scope, _replay(body, receive, more=True), send)
            return
        try:
            answer = await run_in_threadpool(write, registry, user, body)
        except _HANDED_ON:
            answer = None
        if answer is None:
            await self.app(scope, _replay(body, receive), send)
            return
        status, content = answer
        headers = [_JSON, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _json_body(scope: Scope) -> bool:
    """Whether the body is declared JSON, or undeclared (FastAPI reads both as JSON)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return True


def _caller(scope: Scope, registry: Registry) -> Principal:
    settings = registry.settings
    authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
    return authenticate(
        authorization,
        registry.principals,
        open_reads=settings.registry_open_reads,
        anonymous_writes=settings.registry_allow_anonymous_writes,
    )


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The body read so far, and whether it is whole (not past ``MAX_BODY``, the caller still there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """The request's body as already read, then the connection's own messages (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}

    return replayed


def _write_for(path: str, query: bytes) -> Callable[[Registry, Principal, bytes], Answer | None] | None:
    if match := _REGISTER_PATH.fullmatch(path):
        name = match[1]
        return lambda registry, user, body: _register(registry, user, name, body)
    if path == _MLFLOW_CREATE:
        return lambda registry, user, body: _mlflow_create(registry, user, query, body)
    return None


def _register(registry: Registry, user: Principal, name: str, raw: bytes) -> Answer | None:
    """``routes_versions.register_version`` for a version by URI without a reference profile."""
    body = VersionCreate.model_validate_json(raw)
    if body.artifact_uri is None or body.reference_profile is not None:
        return None
    artifact = registry.artifacts.inspect_uri(body.artifact_uri, body.artifact_sha256)
    # an unknown model raises NotFound here, before anything is written: the app then answers its 404
    version = registry.store.register_version(name, body, artifact, user)
    return 201, version.__pydantic_serializer__.to_json(version)


def _mlflow_create(registry: Registry, user: Principal, query: bytes, raw: bytes) -> Answer | None:
    """``mlflow_registry.create_model_version`` with the arguments ``mlflow_params`` would give it."""
    params = query_params(query)
    if params is None:
        return None  # a repeated argument: the app's parsing decides
    if raw.strip():
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            return None
        params.update(parsed)
    # an unknown model raises NotFound when the version is written: the app then answers MLflow's error
    answer = mlflow_registry.register_from_source(params, registry, user, check_model=False)
    # as FastAPI's JSONResponse writes it
    content = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return 200, content
