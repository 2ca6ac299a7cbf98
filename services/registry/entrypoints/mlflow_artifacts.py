"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) on Driftloop's artifact store.

Uploads stream into a fresh folder of the store (hashed while written) and are remembered with their sha256;
downloads are sent only after they hash to it. Paths are checked before anything is touched (no ``..``,
nothing outside the artifact root). ``driftloop-versions/<model>/<version>/...`` serves every registered
version's artifact, verified against the version's sha256 and unpacked, to ``mlflow.pyfunc.load_model``.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.registry.domain.mlflow_mapping import (
    VERSIONS_PREFIX,
    MlflowError,
    artifact_path,
    parse_version_artifact_path,
)
from services.registry.entrypoints.deps import Reader, RegistryDep, Writer
from services.registry.service import Registry

router = APIRouter(prefix="/api/2.0/mlflow-artifacts", tags=["mlflow artifacts"], include_in_schema=False)
SPOOL_BYTES = 16 << 20


def _not_found(path: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at {path!r}", 404)


@router.put("/artifacts/{path:path}")
async def upload_artifact(path: str, request: Request, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    path = artifact_path(path)
    if path.split("/", 1)[0] == VERSIONS_PREFIX:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", f"{VERSIONS_PREFIX}/ is read-only: register a version instead"
        )
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        stored = await run_in_threadpool(registry.artifacts.save_mlflow_file, path, cast(BinaryIO, spool))
    await run_in_threadpool(registry.store.record_mlflow_artifact, path, stored, user)
    return {}


@router.get("/artifacts/{path:path}")
def download_artifact(path: str, registry: RegistryDep, _user: Reader) -> StreamingResponse:
    path = artifact_path(path)
    in_version = parse_version_artifact_path(path)
    if in_version is not None:
        name, version, member = in_version
        with _VersionArchive(registry, name, version) as archive:
            try:
                data = archive.read(member)
            except KeyError:
                raise _not_found(path) from None
        return StreamingResponse(iter([data]), media_type="application/octet-stream")
    row = registry.store.mlflow_artifact(path)
    if row is None:
        raise _not_found(path)
    copy = registry.artifacts.verified_copy(row.uri, row.sha256)
    return StreamingResponse(
        _chunks(copy),
        media_type="application/octet-stream",
        headers={"Content-Length": str(row.size), "X-Artifact-Sha256": row.sha256},
    )


@router.get("/artifacts")
def list_artifacts(
    registry: RegistryDep, _user: Reader, path: Annotated[str, Query()] = ""
) -> dict[str, Any]:
    """The files and folders directly under ``path`` (MLflow lists one level at a time)."""
    path = artifact_path(path) if path.strip("/") else ""
    in_version = parse_version_artifact_path(path) if path else None
    if in_version is not None:
        name, version, member = in_version
        with _VersionArchive(registry, name, version) as archive:
            entries = [(i.filename, i.file_size) for i in archive.infolist() if not i.is_dir()]
        return {"files": _children(entries, member)}
    rows = registry.store.mlflow_artifacts_under(path)
    return {"files": _children([(r.path, r.size) for r in rows], path)}


@router.delete("/artifacts/{path:path}")
def delete_artifact(path: str, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    """Forget the files at ``path``; stored bytes stay (a registered version may have been packed from them)."""
    path = artifact_path(path)
    if path.split("/", 1)[0] == VERSIONS_PREFIX:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", f"{VERSIONS_PREFIX}/ is read-only: delete the version instead"
        )
    registry.store.delete_mlflow_artifacts(path, user)
    return {}


def _children(entries: list[tuple[str, int]], folder: str) -> list[dict[str, Any]]:
    """One level of a listing: files directly in ``folder``, and its subfolders once each."""
    prefix = f"{folder}/" if folder else ""
    files: dict[str, dict[str, Any]] = {}
    for full, size in entries:
        if not full.startswith(prefix):
            continue
        rest = full[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": size}
    return sorted(files.values(), key=lambda f: f["path"])


class _VersionArchive:
    """The version's artifact, verified against its sha256, opened as a zip (an MLflow model folder)."""

    def __init__(self, registry: Registry, name: str, version: int) -> None:
        found = registry.store.get_version(name, version)
        self.copy = registry.artifacts.verified_copy(found.artifact_uri, found.artifact_sha256)
        try:
            self.archive = zipfile.ZipFile(self.copy)
        except zipfile.BadZipFile:
            self.copy.close()
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"version {version} of {name!r} is not an MLflow model (its artifact is not a zip of an "
                "MLmodel folder); download it with GET /models/{name}/versions/{version}/artifact",
            ) from None

    def __enter__(self) -> zipfile.ZipFile:
        return self.archive

    def __exit__(self, *_exc: object) -> None:
        self.archive.close()
        self.copy.close()


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    with f:
        while chunk := f.read(1 << 20):
            yield chunk
