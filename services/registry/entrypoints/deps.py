"""FastAPI dependencies: the registry, the caller, and the role checks every write route shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.registry.domain.auth import Principal, Role, authenticate, require
from services.registry.domain.schemas import MAX_ID
from services.registry.errors import Unavailable
from services.registry.service import Registry

bearer = HTTPBearer(auto_error=False, description="A registry token (DRIFTLOOP_REGISTRY_TOKENS).")


async def get_registry(request: Request) -> Registry:
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None:  # the database was away at start; the app migrates as soon as it is back
        raise Unavailable("the registry database is unavailable; retry shortly (see /healthz)")
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


async def current_user(
    request: Request,
    registry: RegistryDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    settings = registry.settings
    return authenticate(
        request.headers.get("authorization"),
        registry.principals,
        open_reads=settings.registry_open_reads,
        anonymous_writes=settings.registry_allow_anonymous_writes,
    )


CurrentUser = Annotated[Principal, Depends(current_user)]


async def writer(user: CurrentUser) -> Principal:
    return require(user, Role.WRITER)


async def admin(user: CurrentUser) -> Principal:
    return require(user, Role.ADMIN)


Reader = CurrentUser
Writer = Annotated[Principal, Depends(writer)]
Admin = Annotated[Principal, Depends(admin)]

VersionNumber = Annotated[int, Path(ge=1, le=MAX_ID, description="The version's number (1, 2, ...).")]
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="The webhook's id.")]
