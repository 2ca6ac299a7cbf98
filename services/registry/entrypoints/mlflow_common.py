"""What every MLflow-compatible route shares: its request arguments, from the query string and JSON body."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from services.registry.domain.mlflow_mapping import MlflowError

PREFIX = "/api/2.0/mlflow"
MAX_BODY = 10 << 20


async def mlflow_params(request: Request) -> dict[str, Any]:
    """Query parameters and JSON body merged (MLflow sends GET arguments in the query, others as JSON)."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            existing = params[key]
            params[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            params[key] = value
    body = await request.body()
    if len(body) > MAX_BODY:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"the request body is larger than {MAX_BODY} bytes")
    if body.strip():
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise MlflowError("MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise MlflowError("MALFORMED_REQUEST", "the request body must be a JSON object")
        params.update(parsed)
    return params


Params = Annotated[dict[str, Any], Depends(mlflow_params)]


def required(params: dict[str, Any], key: str) -> str:
    """The string argument ``key``; MLflow's ``INVALID_PARAMETER_VALUE`` naming it when missing."""
    value = params.get(key)
    if value is None or value == "":
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{key}'.")
    if not isinstance(value, str | int):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Parameter '{key}' must be a string, not {value!r}.")
    return str(value)


def query_params(query: bytes) -> dict[str, Any] | None:
    """A request's query arguments as :func:`mlflow_params` gives them when none repeats; None when one
    does (a list there: the app's route judges it). For the fast paths, which answer before the framework."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key in params:
            return None
        params[key] = value
    return params


def optional(params: dict[str, Any], key: str) -> str | None:
    """The string argument ``key`` or None; MLflow's ``INVALID_PARAMETER_VALUE`` when it is not one string
    (a repeated query argument arrives as a list)."""
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Parameter '{key}' must be one string, not {value!r}.")
    return value


def max_results(params: dict[str, Any], default: int = 100) -> int:
    """``max_results`` capped at the registry's page size (1000); the rest comes with ``page_token``."""
    try:
        value = int(params.get("max_results") or default)
    except (TypeError, ValueError):
        raise MlflowError("INVALID_PARAMETER_VALUE", "max_results must be an integer") from None
    if value < 1:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"max_results must be at least 1, not {value}")
    return min(value, 1000)


def check_order_by(params: dict[str, Any]) -> None:
    order_by = params.get("order_by") or []
    if order_by:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"order_by {order_by!r} is not supported: results come by name, newest version first",
        )
