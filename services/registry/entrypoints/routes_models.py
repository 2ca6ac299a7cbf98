"""Routes for registered models: create, read, search, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.registry.domain.schemas import ModelCreate, ModelOut, ModelUpdate, Page
from services.registry.entrypoints.deps import Admin, Reader, RegistryDep, Writer
from services.registry.entrypoints.openapi import COMMON, errors

router = APIRouter(prefix="/models", tags=["models"], responses=errors(*COMMON))


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(403, 409))
def create_model(body: ModelCreate, registry: RegistryDep, user: Writer) -> ModelOut:
    """Register a model: its schema, recipe and tags. Versions are added under it."""
    return registry.store.create_model(body, user)


@router.get("")
def list_models(
    registry: RegistryDep,
    _user: Reader,
    name_prefix: Annotated[str, Query(description="Only names starting with this.")] = "",
    tag: Annotated[list[str], Query(description="key=value (exact) or key (present); repeat to AND.")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
) -> Page[ModelOut]:
    """Models by name, filtered, one page at a time."""
    return registry.store.list_models(name_prefix=name_prefix, tags=tag, limit=limit, page_token=page_token)


@router.get("/{name}", responses=errors(404))
def get_model(name: str, registry: RegistryDep, _user: Reader) -> ModelOut:
    return registry.store.get_model(name)


@router.patch("/{name}", responses=errors(403, 404))
def update_model(name: str, body: ModelUpdate, registry: RegistryDep, user: Writer) -> ModelOut:
    """Change the fields sent; the others keep their values. Announced as ``model_updated``."""
    return registry.store.update_model(name, body, user)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404, 409))
def delete_model(
    name: str,
    registry: RegistryDep,
    user: Admin,
    force: Annotated[bool, Query(description="Delete even while aliases point at its versions.")] = False,
) -> None:
    """Delete a model with its versions and aliases (admin); refused (409) while aliases exist unless forced."""
    registry.store.delete_model(name, user, force=force)
