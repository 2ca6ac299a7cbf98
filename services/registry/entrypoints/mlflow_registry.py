"""MLflow's Model Registry REST API (``/api/2.0/mlflow/registered-models/...``, ``.../model-versions/...``) on
Driftloop's models, versions and aliases.

Every write calls the same store method as the native route, under the same role, so it is authorised,
audited and announced on ``model-events`` and webhooks exactly like a native call. What is not supported
answers MLflow's error JSON (docs/mlflow.md).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from services.registry.domain.auth import Principal
from services.registry.domain.mlflow_filter import MODEL_ID_TAG, RUN_ID_TAG, SOURCE_TAG, parse_filter
from services.registry.domain.mlflow_mapping import (
    MlflowError,
    artifact_path,
    check_version_tag_key,
    model_json,
    stage_alias,
    tags_from_mlflow,
    version_artifact_path,
    version_json,
    version_number,
)
from services.registry.domain.schemas import (
    Lineage,
    ModelCreate,
    ModelUpdate,
    VersionCreate,
    VersionOut,
    VersionUpdate,
)
from services.registry.entrypoints.deps import Admin, Reader, RegistryDep, Writer
from services.registry.entrypoints.fast_resolve import search_key
from services.registry.entrypoints.mlflow_common import (
    PREFIX,
    Params,
    check_order_by,
    max_results,
    optional,
    required,
)
from services.registry.entrypoints.mlflow_search import search_page
from services.registry.errors import Conflict, Invalid, NotFound
from services.registry.service import Registry
from shared.artifacts import StoredArtifact

router = APIRouter(prefix=PREFIX, tags=["mlflow registry"], include_in_schema=False)
B = TypeVar("B", bound=BaseModel)
_HEX_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
ARTIFACTS_ENDPOINT = "/api/2.0/mlflow-artifacts/artifacts/"


def _body(cls: type[B], **values: Any) -> B:
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"{field}: {first['msg']}", field=field) from None


# ---------------------------------------------------------------- registered models


@router.post("/registered-models/create")
def create_registered_model(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name = required(params, "name")
    body = _body(
        ModelCreate,
        name=name,
        description=params.get("description") or "",
        task_type="other",
        tags=tags_from_mlflow(params.get("tags")),
    )
    try:
        model = registry.store.create_model(body, user)
    except Conflict:
        raise MlflowError(
            "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists."
        ) from None
    return {"registered_model": model_json(model)}


@router.get("/registered-models/get")
def get_registered_model(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"registered_model": model_json(registry.store.get_model(required(params, "name")))}


@router.patch("/registered-models/update")
def update_registered_model(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name = required(params, "name")
    if "description" not in params:
        return {"registered_model": model_json(registry.store.get_model(name))}
    body = _body(ModelUpdate, description=params.get("description") or "")
    return {"registered_model": model_json(registry.store.update_model(name, body, user))}


@router.post("/registered-models/rename")
def rename_registered_model(params: Params, _user: Writer) -> dict[str, Any]:
    raise MlflowError(
        "INVALID_PARAMETER_VALUE",
        f"renaming {params.get('name')!r} is not supported: a Driftloop model's name keys its Kafka events, "
        "metrics and servers; register a new model instead",
    )


@router.delete("/registered-models/delete")
def delete_registered_model(params: Params, registry: RegistryDep, user: Admin) -> dict[str, Any]:
    """Like MLflow: the model goes with its versions and aliases (the native delete with ``force``)."""
    registry.store.delete_model(required(params, "name"), user, force=True)
    return {}


@router.get("/registered-models/search")
@router.post("/registered-models/search")
def search_registered_models(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    check_order_by(params)
    wanted = parse_filter(optional(params, "filter"), versions=False)
    prefix = wanted.name if wanted.name is not None else wanted.name_prefix
    page = registry.store.list_models(
        name_prefix=prefix,
        tags=wanted.tags,
        limit=max_results(params),
        page_token=optional(params, "page_token"),
    )
    items = [m for m in page.items if wanted.name is None or m.name == wanted.name]
    result: dict[str, Any] = {"registered_models": [model_json(m) for m in items]}
    if page.next_page_token and wanted.name is None:
        result["next_page_token"] = page.next_page_token
    return result


@router.post("/registered-models/set-tag")
def set_registered_model_tag(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, key = required(params, "name"), required(params, "key")
    tags = {**registry.store.get_model(name).tags, key: str(params.get("value", ""))}
    registry.store.update_model(name, _body(ModelUpdate, tags=tags), user)
    return {}


@router.delete("/registered-models/delete-tag")
def delete_registered_model_tag(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, key = required(params, "name"), required(params, "key")
    tags = dict(registry.store.get_model(name).tags)
    if tags.pop(key, None) is not None:
        registry.store.update_model(name, _body(ModelUpdate, tags=tags), user)
    return {}


@router.post("/registered-models/alias")
def set_registered_model_alias(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, alias = required(params, "name"), required(params, "alias")
    registry.store.set_alias(name, alias, version_number(required(params, "version")), user)
    return {}


@router.delete("/registered-models/alias")
def delete_registered_model_alias(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    registry.store.delete_alias(required(params, "name"), required(params, "alias"), user)
    return {}


@router.get("/registered-models/alias")
def get_model_version_by_alias(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    name, alias = required(params, "name"), required(params, "alias")
    version = registry.store.get_model(name).aliases.get(alias)
    if version is None:
        raise NotFound(f"Registered model alias {alias} not found.", field="alias")
    return {"model_version": version_json(registry.store.get_version(name, version))}


@router.post("/registered-models/get-latest-versions")
@router.get("/registered-models/get-latest-versions")
def get_latest_versions(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    """The newest version, or with ``stages`` the version behind each stage's alias."""
    name = required(params, "name")
    stages = params.get("stages") or []
    stages = [stages] if isinstance(stages, str) else stages
    model = registry.store.get_model(name)
    found: list[VersionOut] = []
    if not stages:
        newest = registry.store.search_versions(name=name, limit=1).items
        found = newest[:1]
    for stage in stages:
        alias = stage_alias(str(stage))
        if alias is not None and alias in model.aliases:
            found.append(registry.store.get_version(name, model.aliases[alias]))
    return {"model_versions": [version_json(v) for v in found]}


# ---------------------------------------------------------------- model versions


@router.post("/model-versions/create")
def create_model_version(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    """Register the next version from the files an MLflow client uploaded (``source``), packed into one
    hash-verified zip of the MLmodel folder: the version's artifact, as servers and the trainer load it."""
    return register_from_source(params, registry, user)


def register_from_source(
    params: dict[str, Any], registry: Registry, user: Principal, *, check_model: bool = True
) -> dict[str, Any]:
    """:func:`create_model_version`'s work. Without ``check_model`` (the fast path, fast_writes.py) and
    with a source already in the store (nothing is packed from it), an unknown model is found when the
    version is written (nothing is): one read less."""
    name, source = required(params, "name"), required(params, "source")
    if check_model or not source.startswith(("file://", "s3://")):
        registry.store.check_model_exists(name)  # RESOURCE_DOES_NOT_EXIST before reading any file
    run_id = str(params.get("run_id") or "")
    model_id = str(params.get("model_id") or "")
    if not model_id and source.startswith("models:/m-"):
        model_id = source[len("models:/") :].strip("/")
    if model_id and not run_id:  # the logged model's run, as MLflow's server fills it in
        logged = registry.store.mlflow_record("logged_model", model_id)
        run_id = str(logged["info"].get("source_run_id") or "") if logged else ""
    artifact = _artifact_from_source(registry, name, source, model_id)
    tags = tags_from_mlflow(params.get("tags"))
    for key in tags:
        check_version_tag_key(key)
    tags[SOURCE_TAG] = source
    if run_id:
        tags[RUN_ID_TAG] = run_id
    if model_id:
        tags[MODEL_ID_TAG] = model_id
    lineage = Lineage(training_run_id=UUID(run_id) if _HEX_RUN_ID.match(run_id) else None)
    body = _body(VersionCreate, description=params.get("description") or "", tags=tags, lineage=lineage)
    return {"model_version": version_json(registry.store.register_version(name, body, artifact, user))}


def _source_path(registry: Registry, source: str, model_id: str) -> str | None:
    """The artifact-proxy folder that ``source`` names (``models:/m-...``, ``runs:/...``,
    ``mlflow-artifacts:/...`` or this registry's proxy URL); None for a plain store URI."""
    if source.startswith("models:/"):
        logged_id = source[len("models:/") :].strip("/") or model_id
        record = registry.store.mlflow_record("logged_model", logged_id)
        if record is None:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"source {source!r} is not a logged model of this registry; only models:/<model_id> of a "
                "logged model can be a version's source (register models:/NAME/VERSION by its own source)",
            )
        return _source_path(registry, record["info"]["artifact_uri"], "")
    if source.startswith("runs:/"):
        run_id, _, sub = source[len("runs:/") :].partition("/")
        run = registry.store.mlflow_record("run", run_id)
        if run is None:
            raise NotFound(f"Run with id={run_id} not found", field="source")
        root = _source_path(registry, run["info"]["artifact_uri"], "") or ""
        return artifact_path(f"{root}/{sub}") if sub else root
    if source.startswith("mlflow-artifacts:"):
        return artifact_path(unquote(urlsplit(source).path))
    if source.startswith(("http://", "https://")) and ARTIFACTS_ENDPOINT in source:
        return artifact_path(unquote(urlsplit(source).path).split(ARTIFACTS_ENDPOINT, 1)[1])
    return None


def _artifact_from_source(registry: Registry, name: str, source: str, model_id: str) -> StoredArtifact:
    path = _source_path(registry, source, model_id)
    if path is None:  # a file already in the store (s3://, file://), hashed like a native registration
        return registry.artifacts.inspect_uri(source, None)
    files = registry.store.mlflow_artifacts_under(path)
    if not files:
        single = registry.store.mlflow_artifact(path)
        if single is None:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"nothing was uploaded under {source!r}: log the model's files first (mlflow.<flavor>.log_model)",
            )
        return registry.artifacts.inspect_uri(single.uri, single.sha256)
    members = [(f.path[len(path) + 1 :], f.uri, f.sha256) for f in files]
    return registry.artifacts.pack_mlflow_model(name, members)


def _version_params(params: dict[str, Any]) -> tuple[str, int]:
    return required(params, "name"), version_number(required(params, "version"))


@router.get("/model-versions/get")
def get_model_version(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"model_version": version_json(registry.store.get_version(*_version_params(params)))}


@router.patch("/model-versions/update")
def update_model_version(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, version = _version_params(params)
    if "description" not in params:
        return {"model_version": version_json(registry.store.get_version(name, version))}
    body = _body(VersionUpdate, description=params.get("description") or "")
    return {"model_version": version_json(registry.store.update_version(name, version, body, user))}


@router.delete("/model-versions/delete")
def delete_model_version(params: Params, registry: RegistryDep, user: Admin) -> dict[str, Any]:
    """Like MLflow, the version's aliases go with it (each removal audited and announced)."""
    name, version = _version_params(params)
    for alias in registry.store.get_version(name, version).aliases:
        registry.store.delete_alias(name, alias, user, "deleted with its version through the MLflow API")
    registry.store.delete_version(name, version, user)
    return {}


@router.get("/model-versions/search")
@router.post("/model-versions/search")
def search_model_versions(request: Request, params: Params, registry: RegistryDep, _user: Reader) -> Response:
    """Versions matching the filter; one indexed query, the page serialised once (no response model).
    A GET's answer is kept for the next identical one until a change is committed (fast_resolve.py)."""

    def build() -> bytes:
        return search_page(registry, params)

    if request.method != "GET":
        return Response(build(), media_type="application/json")
    key = search_key(request.scope["path"], request.scope["query_string"])
    return Response(registry.resolve_cache.cached_json(key, build), media_type="application/json")


@router.post("/model-versions/transition-stage")
def transition_model_version_stage(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    """Stages are aliases: Production/Staging moves that alias here (the version that had it loses it, as
    with ``archive_existing_versions``); Archived/None removes both stage aliases from this version."""
    name, version = _version_params(params)
    alias = stage_alias(required(params, "stage"))
    current = registry.store.get_version(name, version)
    reason = f"MLflow stage transition to {params['stage']}"
    if alias is not None:
        registry.store.set_alias(name, alias, version, user, reason)
    else:
        for held in ("production", "staging"):
            if held in current.aliases:
                registry.store.delete_alias(name, held, user, reason)
    return {"model_version": version_json(registry.store.get_version(name, version))}


@router.get("/model-versions/get-download-uri")
def get_model_version_download_uri(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    """The version's verified artifact, served unpacked through the artifact proxy."""
    name, version = _version_params(params)
    registry.store.get_version(name, version)
    return {"artifact_uri": f"mlflow-artifacts:/{version_artifact_path(name, version)}"}


@router.post("/model-versions/set-tag")
def set_model_version_tag(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, version = _version_params(params)
    key = check_version_tag_key(required(params, "key"))
    tags = {**registry.store.get_version(name, version).tags, key: str(params.get("value", ""))}
    registry.store.update_version(name, version, _body(VersionUpdate, tags=tags), user)
    return {}


@router.delete("/model-versions/delete-tag")
def delete_model_version_tag(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    name, version = _version_params(params)
    key = check_version_tag_key(required(params, "key"))
    tags = dict(registry.store.get_version(name, version).tags)
    if tags.pop(key, None) is not None:
        registry.store.update_version(name, version, _body(VersionUpdate, tags=tags), user)
    return {}
