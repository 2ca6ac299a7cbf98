"""What the OpenAPI document promises: the error statuses each route answers and who may call it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from services.registry.domain.schemas import ErrorBody
from services.registry.entrypoints import deps

_DESCRIPTIONS = {
    401: "No token where one is needed, or an unknown token (with `WWW-Authenticate: Bearer`)",
    403: "The token's role may not do this",
    404: "No such model, version, alias or webhook",
    405: "Method not allowed here (`Allow` names the ones that are)",
    409: "Conflicts with the current state",
    422: "Invalid input, including a body that is not JSON; `field` names it",
    503: "The database or artifact store is away; retry shortly (see /healthz)",
}
COMMON = (401, 422, 503)
"""Every API route can answer these: a bad token, bad input, a dependency away."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, each with the JSON error body."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def required_role(route: APIRoute) -> str | None:
    """``reader``, ``writer`` or ``admin``: the role a route's dependencies check; None for no check."""
    calls: set[Any] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        calls.add(dependant.call)
        pending.extend(dependant.dependencies)
    for role, check in (("admin", deps.admin), ("writer", deps.writer), ("reader", deps.current_user)):
        if check in calls:
            return role
    return None


def install(app: FastAPI, routers: list[APIRouter], *, open_reads: bool, anonymous_writes: bool) -> None:
    """Generate the document once, marking each operation's role, and reads as needing no token while
    reads are open (``security: [{}, {bearer}]``: a token is optional and, if sent, must be known)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for route in (r for router in routers for r in router.routes):
            if not isinstance(route, APIRoute):
                continue
            role = required_role(route)
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                if role is None:
                    continue
                operation["x-required-role"] = role
                if anonymous_writes or (role == "reader" and open_reads):
                    operation["security"] = [{}, {"HTTPBearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
