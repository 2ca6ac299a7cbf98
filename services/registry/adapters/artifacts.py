"""Artifacts as the registry handles them: store an upload, inspect a referenced URI, read back verified.

Thin I/O over :mod:`shared.artifacts`; the registry never trusts a hash it did not compute.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Sequence
from typing import IO, BinaryIO, cast

from services.registry.errors import ArtifactCorrupted, Forbidden, Invalid, NotFound, Unavailable
from shared.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactOutsideRoot,
    ArtifactStore,
    StoredArtifact,
    artifact_store,
    store_for_uri,
)
from shared.settings import Settings

SPOOL_BYTES = 16 << 20
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def unreachable(exc: BaseException) -> bool:
    """Whether a store error means the store is away (connection, timeout, 5xx), not that the input is bad."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as StoreConnectionError

    cause = exc.__cause__ or exc
    if isinstance(cause, StoreConnectionError | HTTPClientError):
        return True
    if isinstance(cause, ClientError):
        return int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return False


def _away(exc: ArtifactError) -> Unavailable:
    return Unavailable(f"the artifact store is unavailable ({exc}); retry shortly", field="artifact")


def upload_key(model_name: str, filename: str | None) -> str:
    """Where an uploaded artifact goes: a fresh folder per upload, so nothing is ever overwritten."""
    name = _SAFE_FILENAME.sub("_", filename or "").strip("._") or "model.joblib"
    return f"models/{model_name}/uploads/{uuid.uuid4().hex}/{name}"


class ArtifactFiles:
    """The registry's artifact store (built once, at bootstrap) and the stores of allowed prefixes."""

    def __init__(self, settings: Settings, store: ArtifactStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else artifact_store(settings)

    def probe(self) -> None:
        """One existence check on the store; raises :class:`ArtifactError` when it is away."""
        root = str(getattr(self.store, "root", "")).rstrip("/")
        self.store.exists(f"{root}/driftloop-health-probe")

    def save_upload(self, model_name: str, filename: str | None, stream: BinaryIO) -> StoredArtifact:
        """Stream an uploaded artifact into the store; the store hashes what it writes."""
        try:
            return self.store.put_stream(upload_key(model_name, filename), stream)
        except ArtifactError as exc:
            if unreachable(exc):
                raise _away(exc) from exc
            raise Invalid(f"could not store the artifact: {exc}", field="artifact") from exc

    def inspect_uri(self, uri: str, expected_sha256: str | None) -> StoredArtifact:
        """Hash and size of an artifact referenced by URI, checked against ``expected_sha256`` when given."""
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in store_for_uri(self.settings, uri).open_stream(uri):
                digest.update(chunk)
                size += len(chunk)
        except ArtifactNotFound as exc:
            raise Invalid(
                f"no artifact at {uri}; upload it first or fix the URI", field="artifact_uri"
            ) from exc
        except ArtifactOutsideRoot as exc:
            raise Invalid(str(exc), field="artifact_uri") from exc
        except ArtifactError as exc:
            if unreachable(exc):
                raise _away(exc) from exc
            raise Invalid(f"cannot read {uri}: {exc}", field="artifact_uri") from exc
        sha256 = digest.hexdigest()
        if expected_sha256 is not None and expected_sha256 != sha256:
            raise Invalid(
                f"the artifact at {uri} has sha256 {sha256}, not the {expected_sha256} you sent",
                field="artifact_sha256",
            )
        return StoredArtifact(uri=uri, sha256=sha256, size=size)

    def verified_copy(self, uri: str, sha256: str) -> IO[bytes]:
        """The artifact's bytes in a temporary file, rewound, only if they still hash to ``sha256``."""
        digest = hashlib.sha256()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller closes it
        try:
            for chunk in store_for_uri(self.settings, uri).open_stream(uri):
                digest.update(chunk)
                spool.write(chunk)
        except ArtifactNotFound as exc:
            spool.close()
            raise NotFound(f"the artifact at {uri} is gone from the store", field="artifact_uri") from exc
        except ArtifactOutsideRoot as exc:  # registered before the root was enforced, or a prefix was removed
            spool.close()
            raise Forbidden(f"{exc}; it is not served", field="artifact_uri") from exc
        except ArtifactError as exc:
            spool.close()
            if unreachable(exc):
                raise _away(exc) from exc
            raise
        except BaseException:
            spool.close()
            raise
        if digest.hexdigest() != sha256:
            spool.close()
            raise ArtifactCorrupted(
                f"the artifact at {uri} hashes to {digest.hexdigest()}, not the registered {sha256}; "
                "register a new version with a good artifact",
                field="artifact_sha256",
            )
        spool.seek(0)
        return spool

    def save_mlflow_file(self, path: str, stream: BinaryIO) -> StoredArtifact:
        """Stream a file an MLflow client uploads into a fresh folder of the store (never overwriting one)."""
        return self.save_upload("mlflow", path.rsplit("/", 1)[-1], stream)

    def pack_mlflow_model(self, model_name: str, files: Sequence[tuple[str, str, str]]) -> StoredArtifact:
        """One zip of an MLflow model folder (``(member, uri, sha256)`` per file, each checked against its
        hash first), streamed into the store and hashed there: the version's artifact (docs/mlflow.md)."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for member, uri, sha256 in files:
                    with self.verified_copy(uri, sha256) as copy, archive.open(member, "w") as out:
                        shutil.copyfileobj(copy, out, 1 << 20)
            spool.seek(0)
            return self.save_upload(model_name, "model.zip", cast(BinaryIO, spool))
