"""Driftloop's models, versions and aliases as MLflow's REST API shows them, and back (pure, no I/O).

Stages (deprecated in MLflow) are aliases here: ``Production`` is the alias ``production``, ``Staging`` is
``staging``; ``Archived`` and ``None`` mean "no stage alias on this version". See docs/mlflow.md.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Any

from services.registry.domain.mlflow_filter import MODEL_ID_TAG, RESERVED_TAG_PREFIX, RUN_ID_TAG, SOURCE_TAG
from services.registry.domain.schemas import ModelOut, VersionOut
from services.registry.errors import (
    ArtifactCorrupted,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RegistryError,
    Unauthenticated,
    Unavailable,
)

STAGE_ALIASES = {"production": "Production", "staging": "Staging"}
"""Alias → the MLflow stage it stands for."""
_STAGES = {"production": "production", "staging": "staging", "archived": None, "none": None}
VERSIONS_PREFIX = "driftloop-versions"
"""Artifact paths under which every version's verified artifact is served, unpacked, to MLflow clients."""
MAX_ARTIFACT_PATH = 1000


class MlflowError(RegistryError):
    """An error with MLflow's own ``error_code`` (``RESOURCE_ALREADY_EXISTS``, ``ENDPOINT_NOT_FOUND``...)."""

    def __init__(self, error_code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


def mlflow_error(exc: RegistryError) -> tuple[int, dict[str, str]]:
    """The HTTP status and MLflow error body for any registry error (what MLflow clients parse).

    >>> mlflow_error(NotFound("no registered model named 'x'"))
    (404, {'error_code': 'RESOURCE_DOES_NOT_EXIST', 'message': "no registered model named 'x'"})
    """
    if isinstance(exc, MlflowError):
        return exc.status, {"error_code": exc.error_code, "message": exc.message}
    kinds: list[tuple[type[RegistryError], str, int]] = [
        (NotFound, "RESOURCE_DOES_NOT_EXIST", 404),
        (Unauthenticated, "UNAUTHENTICATED", 401),
        (Forbidden, "PERMISSION_DENIED", 403),
        (Unavailable, "TEMPORARILY_UNAVAILABLE", 503),
        (ArtifactCorrupted, "DATA_LOSS", 409),
        (Conflict, "INVALID_STATE", 400),
        (Invalid, "INVALID_PARAMETER_VALUE", 400),
    ]
    for kind, code, status in kinds:
        if isinstance(exc, kind):
            message = f"{exc.message} (field: {exc.field})" if exc.field else exc.message
            return status, {"error_code": code, "message": message}
    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": exc.message}


def ms(when: datetime) -> int:
    """Milliseconds since the epoch, MLflow's timestamps: truncated exactly, as the database writes them
    (``adapters/version_json.mlflow_version_json``); a float product would sometimes land a millisecond low.

    >>> from datetime import UTC
    >>> ms(datetime(2026, 12, 8, 0, 0, 1, 999999, tzinfo=UTC)), ms(datetime(1970, 1, 1, 0, 0, 0, 1000))
    (1796688001999, 1)
    """
    return calendar.timegm(when.utctimetuple()) * 1000 + when.microsecond // 1000


def tags_from_mlflow(tags: Any, *, field: str = "tags") -> dict[str, str]:
    """MLflow's ``[{"key": k, "value": v}]`` as a dict; keys starting ``mlflow.`` are the registry's own."""
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise Invalid("tags must be a list of {key, value} objects", field=field)
    result: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str) or not tag["key"]:
            raise Invalid("every tag needs a non-empty string key", field=field)
        result[tag["key"]] = str(tag.get("value", ""))
    return result


def tags_to_mlflow(tags: dict[str, str], *, hide_reserved: bool = True) -> list[dict[str, str]]:
    return [
        {"key": k, "value": v}
        for k, v in sorted(tags.items())
        if not (hide_reserved and k.startswith(RESERVED_TAG_PREFIX))
    ]


def check_version_tag_key(key: str) -> str:
    if key.startswith(RESERVED_TAG_PREFIX):
        raise Invalid(f"tag keys starting with {RESERVED_TAG_PREFIX!r} are reserved", field="key")
    return key


def stage_alias(stage: str) -> str | None:
    """The alias a stage stands for; None for ``Archived``/``None``; :class:`Invalid` for anything else."""
    try:
        return _STAGES[stage.strip().lower()]
    except KeyError:
        raise Invalid(
            f"stage {stage!r} is not one of None, Staging, Production, Archived", field="stage"
        ) from None


def current_stage(aliases: list[str]) -> str:
    """The MLflow stage a version is in, from its aliases (production wins over staging)."""
    for alias in ("production", "staging"):
        if alias in aliases:
            return STAGE_ALIASES[alias]
    return "None"


MLFLOW_STATUS = {"ready": "READY", "pending": "PENDING_REGISTRATION", "failed": "FAILED_REGISTRATION"}
"""A version's status → MLflow's ``ModelVersionStatus``."""


def version_json(v: VersionOut) -> dict[str, Any]:
    """A version as MLflow's ``ModelVersion`` message."""
    return _version_message(
        v.model_name, v.version, ms(v.created_at), ms(v.updated_at), v.created_by, v.aliases,
        v.description, v.tags, v.artifact_uri, v.status.value,
    )  # fmt: skip


def _version_message(
    name: str,
    version: int,
    created_ms: int,
    updated_ms: int,
    created_by: str,
    aliases: list[str],
    description: str,
    tags: dict[str, str],
    artifact_uri: str,
    status: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": str(version),
        "creation_timestamp": created_ms,
        "last_updated_timestamp": updated_ms,
        "user_id": created_by,
        "current_stage": current_stage(aliases),
        "description": description,
        "source": tags.get(SOURCE_TAG, artifact_uri),
        "run_id": tags.get(RUN_ID_TAG, ""),
        "model_id": tags.get(MODEL_ID_TAG, ""),
        "status": MLFLOW_STATUS.get(status, "READY"),
        "status_message": "",
        "tags": tags_to_mlflow(tags),
        "run_link": "",
        "aliases": list(aliases),
    }


def model_json(m: ModelOut, latest: list[VersionOut] | None = None) -> dict[str, Any]:
    """A registered model as MLflow's ``RegisteredModel`` message."""
    return {
        "name": m.name,
        "creation_timestamp": ms(m.created_at),
        "last_updated_timestamp": ms(m.updated_at),
        "user_id": m.created_by,
        "description": m.description,
        "tags": tags_to_mlflow(m.tags, hide_reserved=False),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(m.aliases.items())],
        "latest_versions": [version_json(v) for v in latest or []],
    }


def version_number(value: Any) -> int:
    """MLflow sends version numbers as strings; :class:`Invalid` unless it is a positive integer."""
    try:
        number = int(str(value))
    except ValueError:
        raise Invalid(f"version must be a positive integer, not {value!r}", field="version") from None
    if not 1 <= number <= 2**63 - 1:
        raise Invalid(f"version must be a positive integer, not {value!r}", field="version")
    return number


def artifact_path(path: str) -> str:
    """``path`` if it is a relative artifact path that stays where it is put; :class:`Invalid` otherwise.

    >>> artifact_path("1/models/m-1/artifacts/MLmodel")
    '1/models/m-1/artifacts/MLmodel'
    >>> artifact_path("1/../../etc/passwd")
    Traceback (most recent call last):
    ...
    services.registry.errors.Invalid: artifact path '1/../../etc/passwd' may not contain empty, '.' or '..' parts
    """
    path = path.strip("/")
    if not path or len(path) > MAX_ARTIFACT_PATH:
        raise Invalid(f"artifact paths are 1-{MAX_ARTIFACT_PATH} characters", field="path")
    if "\\" in path or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise Invalid(f"artifact path {path!r} has a backslash or control character", field="path")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise Invalid(f"artifact path {path!r} may not contain empty, '.' or '..' parts", field="path")
    return path


def version_artifact_path(name: str, version: int) -> str:
    """Where MLflow clients download version ``version`` of ``name`` (its verified artifact, unpacked)."""
    return f"{VERSIONS_PREFIX}/{name}/{version}"


def parse_version_artifact_path(path: str) -> tuple[str, int, str] | None:
    """(model, version, member path inside the artifact) for a path under ``driftloop-versions/``."""
    parts = path.split("/", 3)
    if len(parts) < 3 or parts[0] != VERSIONS_PREFIX:
        return None
    return parts[1], version_number(parts[2]), parts[3] if len(parts) == 4 else ""
