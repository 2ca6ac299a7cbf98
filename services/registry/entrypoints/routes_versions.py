"""Routes for model versions: register (by URI or upload), read, search, update, download the artifact."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from services.registry.domain.rules import check_profile_against_schema
from services.registry.domain.schemas import (
    FeatureImportanceOut,
    Page,
    VersionCreate,
    VersionOut,
    VersionUpdate,
)
from services.registry.entrypoints.deps import Admin, Reader, RegistryDep, VersionNumber, Writer
from services.registry.entrypoints.fast_resolve import search_key
from services.registry.entrypoints.openapi import COMMON, errors
from services.registry.errors import Invalid
from services.registry.service import Registry
from shared.events import VersionStatus
from shared.importance import importance_shares
from shared.profile import ReferenceProfile

router = APIRouter(tags=["versions"], responses=errors(*COMMON))


@router.post(
    "/models/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionOut,
    responses=errors(403, 404),
)
def register_version(name: str, body: VersionCreate, registry: RegistryDep, user: Writer) -> Response:
    """Register the next version with an artifact already in the store (``artifact_uri``); it is hashed here."""
    if body.artifact_uri is None:
        raise Invalid(
            "send artifact_uri, or upload the artifact to .../versions/upload", field="artifact_uri"
        )
    _check_model_takes(registry, name, body)  # 404 or 422 before reading a possibly large artifact
    artifact = registry.artifacts.inspect_uri(body.artifact_uri, body.artifact_sha256)
    return _json(registry.store.register_version(name, body, artifact, user), status.HTTP_201_CREATED)


@router.post(
    "/models/{name}/versions/upload", status_code=status.HTTP_201_CREATED, responses=errors(403, 404)
)
def upload_version(
    name: str,
    registry: RegistryDep,
    user: Writer,
    artifact: Annotated[UploadFile, File(description="The model file (e.g. a joblib-pickled pipeline).")],
    metadata: Annotated[str, Form(description="A VersionCreate as JSON, without artifact_uri.")] = "{}",
) -> VersionOut:
    """Register the next version, streaming its artifact into the store in the same request."""
    try:
        body = VersionCreate.model_validate(json.loads(metadata))
    except (ValueError, ValidationError) as exc:
        field = "metadata"
        if isinstance(exc, ValidationError) and exc.errors():
            field = "metadata." + ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise Invalid(f"metadata is not a valid version: {exc}", field=field) from None
    if body.artifact_uri is not None:
        raise Invalid("an uploaded version cannot also reference artifact_uri", field="metadata.artifact_uri")
    _check_model_takes(registry, name, body)
    stored = registry.artifacts.save_upload(name, artifact.filename, artifact.file)
    if body.artifact_sha256 is not None and body.artifact_sha256 != stored.sha256:
        raise Invalid(
            f"the upload hashes to {stored.sha256}, not the {body.artifact_sha256} you sent; it was corrupted "
            "on the way, send it again",
            field="metadata.artifact_sha256",
        )
    return registry.store.register_version(name, body, stored, user)


def _check_model_takes(registry: Registry, name: str, body: VersionCreate) -> None:
    """404 for a model that does not exist; 422 naming the feature for a profile its schema contradicts."""
    if body.reference_profile is None:
        registry.store.check_model_exists(name)  # one indexed read, not the whole model
        return
    model = registry.store.get_model(name)
    check_profile_against_schema(model.feature_schema, body.reference_profile)


def _json(body: BaseModel, status_code: int = 200) -> Response:
    """Already validated by the store: serialise once instead of letting FastAPI validate it again."""
    return Response(
        content=body.__pydantic_serializer__.to_json(body),
        status_code=status_code,
        media_type="application/json",
    )


@router.get("/models/{name}/versions", response_model=Page[VersionOut], responses=errors(404))
def list_versions(
    name: str,
    request: Request,
    registry: RegistryDep,
    _user: Reader,
    status: VersionStatus | None = None,
    tag: Annotated[list[str], Query(description="key=value or key; repeat to AND.")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
) -> Response:
    """A model's versions, newest first."""
    return _cached_search(
        request,
        registry,
        lambda: registry.store.search_versions_json(
            name=name, status=status, tags=tag, limit=limit, page_token=page_token
        ),
    )


@router.get("/versions", response_model=Page[VersionOut])
def search_versions(
    request: Request,
    registry: RegistryDep,
    _user: Reader,
    name_prefix: str = "",
    status: VersionStatus | None = None,
    tag: Annotated[list[str], Query(description="key=value or key; repeat to AND.")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
) -> Response:
    """Versions across models (by model name, newest version first), keyset-paged."""
    return _cached_search(
        request,
        registry,
        lambda: registry.store.search_versions_json(
            name_prefix=name_prefix, status=status, tags=tag, limit=limit, page_token=page_token
        ),
    )


def _cached_search(request: Request, registry: Registry, build: Callable[[], bytes]) -> Response:
    """A search page, kept for the next identical search until a change is committed (fast_resolve.py)."""
    key = search_key(request.scope["path"], request.scope["query_string"])
    return Response(registry.resolve_cache.cached_json(key, build), media_type="application/json")


@router.get("/models/{name}/versions/{version}", responses=errors(404))
async def get_version(name: str, version: VersionNumber, registry: RegistryDep, _user: Reader) -> VersionOut:
    """One version (without its reference profile). Two indexed reads, run on the event loop."""
    return registry.store.get_version(name, version)


@router.patch("/models/{name}/versions/{version}", responses=errors(403, 404, 409))
def update_version(
    name: str, version: VersionNumber, body: VersionUpdate, registry: RegistryDep, user: Writer
) -> VersionOut:
    """Change description, tags, metrics or status (pending → ready/failed); status changes are announced."""
    return registry.store.update_version(name, version, body, user)


@router.delete(
    "/models/{name}/versions/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(403, 404, 409),
)
def delete_version(name: str, version: VersionNumber, registry: RegistryDep, user: Admin) -> None:
    """Delete a version no alias points at (admin; 409 while one does); its number is never reused."""
    registry.store.delete_version(name, version, user)


@router.get("/models/{name}/versions/{version}/reference-profile", responses=errors(404))
def get_reference_profile(
    name: str, version: VersionNumber, registry: RegistryDep, _user: Reader
) -> ReferenceProfile:
    """The training-data summary the monitor compares this version's live traffic against."""
    return registry.store.reference_profile(name, version)


@router.get("/models/{name}/versions/{version}/feature-importance", responses=errors(404))
def get_feature_importance(
    name: str, version: VersionNumber, registry: RegistryDep, _user: Reader
) -> FeatureImportanceOut:
    """How much this version relies on each feature, most important first; the monitor ranks drift by it."""
    measured = registry.store.reference_profile(name, version).feature_importance
    ordered = dict(sorted(measured.items(), key=lambda item: (-item[1], item[0])))
    shares = importance_shares(ordered)
    return FeatureImportanceOut(
        model_name=name, version=version, importance=ordered, shares={k: shares.get(k, 0.0) for k in ordered}
    )


@router.get(
    "/models/{name}/versions/{version}/artifact",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(403, 404, 409)},
)
def download_artifact(
    name: str, version: VersionNumber, registry: RegistryDep, _user: Reader
) -> StreamingResponse:
    """The artifact's bytes, sent only after they hashed to the registered sha256 (409 if corrupted)."""
    found = registry.store.get_version(name, version)
    copy = registry.artifacts.verified_copy(found.artifact_uri, found.artifact_sha256)
    return StreamingResponse(
        _chunks(copy),
        media_type="application/octet-stream",
        headers={
            "X-Artifact-Sha256": found.artifact_sha256,
            "Content-Length": str(found.artifact_size),
            "Content-Disposition": f'attachment; filename="{name}-{version}"',
        },
    )


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    with f:
        while chunk := f.read(1 << 20):
            yield chunk
