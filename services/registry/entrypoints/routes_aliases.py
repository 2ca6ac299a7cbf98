"""Routes for aliases: set/move, resolve, delete, roll back, history and "which version at time T"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import TypeAdapter

from services.registry.adapters.store import ResolvedAlias
from services.registry.domain.schemas import AliasAt, AliasHistoryEntry, AliasOut, AliasSet, RollbackRequest
from services.registry.entrypoints.deps import Reader, RegistryDep, Writer
from services.registry.entrypoints.openapi import COMMON, errors
from services.registry.errors import Invalid
from shared.events import UtcDatetime

router = APIRouter(prefix="/models/{name}", tags=["aliases"], responses=errors(*COMMON, 404))
_UTC: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


@router.get("/aliases")
def list_aliases(name: str, registry: RegistryDep, _user: Reader) -> list[AliasOut]:
    return registry.store.list_aliases(name)


@router.put("/aliases/{alias}", responses=errors(403, 409))
def set_alias(name: str, alias: str, body: AliasSet, registry: RegistryDep, user: Writer) -> AliasOut:
    """Point ``alias`` at a ready version (set or move); announced on model-events and kept in the history."""
    return registry.store.set_alias(name, alias, body.version, user, body.reason)


@router.get("/aliases/{alias}", response_model=ResolvedAlias)
async def resolve_alias(name: str, alias: str, registry: RegistryDep, _user: Reader) -> Response:
    """The version behind ``alias`` now, with its artifact URI and sha256 (what a model server loads).

    Always current: once a move is committed, through any replica, the next resolve answers with it.
    """
    # The call every model server polls: fast_resolve.py answers it before the framework does whenever it
    # can. This route documents it and answers the rest (errors), from the same cache, on the event loop.
    return Response(registry.resolve_cache.resolve_json(name, alias), media_type="application/json")


@router.delete("/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403))
def delete_alias(
    name: str,
    alias: str,
    registry: RegistryDep,
    user: Writer,
    reason: Annotated[str, Query(max_length=2000)] = "",
) -> None:
    registry.store.delete_alias(name, alias, user, reason)


@router.post("/aliases/{alias}/rollback", responses=errors(403, 409))
def rollback_alias(
    name: str, alias: str, registry: RegistryDep, user: Writer, body: RollbackRequest | None = None
) -> AliasOut:
    """Move ``alias`` back to the version it pointed at before (repeat to go further back)."""
    return registry.store.rollback_alias(name, alias, user, body.reason if body else "")


@router.get("/aliases/{alias}/history")
def alias_history(name: str, alias: str, registry: RegistryDep, _user: Reader) -> list[AliasHistoryEntry]:
    """Every move of ``alias``, oldest first."""
    return registry.store.alias_history(name, alias)


@router.get("/aliases/{alias}/at")
def alias_at(
    name: str,
    alias: str,
    registry: RegistryDep,
    _user: Reader,
    time: Annotated[datetime, Query(description="ISO 8601; naive times are UTC.")],
) -> AliasAt:
    """Which version ``alias`` pointed at at ``time`` ("what served production last Tuesday at 14:00?")."""
    try:
        when = _UTC.validate_python(time)
    except (ValueError, OverflowError):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise Invalid(
            f"time {time.isoformat()} is outside the years 1 to 9999 in UTC", field="time"
        ) from None
    return registry.store.alias_at(name, alias, when)


@router.get("/history")
def model_alias_history(name: str, registry: RegistryDep, _user: Reader) -> list[AliasHistoryEntry]:
    """Every alias move of the model, oldest first."""
    return registry.store.alias_history(name)
