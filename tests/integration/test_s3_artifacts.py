"""Both artifact backends through the same checks: file:// on disk and s3:// on a real S3 server (S3Proxy)."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftloop.process import free_port
from shared.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactOutsideRoot,
    ArtifactStore,
    S3ArtifactStore,
    artifact_store,
    store_for_uri,
)
from shared.settings import Settings
from tests.fixtures.s3 import S3Server, random_bucket_name

pytestmark = pytest.mark.integration

MiB = 1 << 20


@dataclass
class Backend:
    """A store under test, the settings it came from, and how to build another one on the same root."""

    name: str
    store: ArtifactStore
    settings: Settings
    make: Callable[..., ArtifactStore]


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        settings = Settings(data_dir=tmp_path / "data", artifact_root=(tmp_path / "artifacts").as_uri())
        return Backend("file", artifact_store(settings), settings, lambda **_: artifact_store(settings))
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    settings = server.settings(artifact_root=f"s3://{bucket}/runs")

    def make(**kwargs: Any) -> ArtifactStore:
        return S3ArtifactStore(
            settings.resolved_artifact_root,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            **kwargs,
        )

    return Backend("s3", artifact_store(settings), settings, make)


class GeneratedStream:
    """``total`` random bytes made as they are read, so the test itself never holds the whole payload."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.total, self.fail_after = total, fail_after
        self.sent = 0
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError("the source stream broke")
        remaining = self.total - self.sent
        out = os.urandom(remaining if size < 0 else min(size, remaining))
        self.sent += len(out)
        self.sha256.update(out)
        return out


def test_put_and_get_round_trip_reports_sha256_and_size(backend: Backend) -> None:
    data = b"model bytes \x00\xff" * 1000
    stored = backend.store.put_bytes("models/churn/3/model.joblib", data)

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.uri.startswith(backend.store.root + "/")
    assert stored.uri.endswith("/models/churn/3/model.joblib")
    assert backend.store.exists(stored.uri)
    assert backend.store.get_bytes(stored.uri) == data
    # another process only has the URI and the settings
    assert store_for_uri(backend.settings, stored.uri).get_bytes(stored.uri) == data


def test_put_stream_of_20_mib_is_streamed_not_held_in_memory(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    store = backend.make(part_size=5 * MiB, max_concurrency=1) if backend.name == "s3" else backend.store
    source = GeneratedStream(20 * MiB)

    tracemalloc.start()
    try:
        stored = store.put_stream("datasets/big.parquet", source)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 20 * MiB, f"upload held {peak / MiB:.1f} MiB in memory"
    assert stored.size == 20 * MiB
    assert stored.sha256 == source.sha256.hexdigest()
    read_back = hashlib.sha256()
    for chunk in store.open_stream(stored.uri):
        read_back.update(chunk)
    assert read_back.hexdigest() == stored.sha256
    if backend.name == "s3":
        # a multipart object's ETag ends in "-<parts>": 20 MiB in full 5 MiB parts is 4 parts
        bucket, key = stored.uri.removeprefix("s3://").split("/", 1)
        etag = request.getfixturevalue("s3_server").client().head_object(Bucket=bucket, Key=key)["ETag"]
        assert etag.strip('"').endswith("-4")


def test_open_stream_yields_chunks_no_larger_than_asked(backend: Backend) -> None:
    data = random.Random(7).randbytes(2 * MiB + MiB // 2 + 1)
    stored = backend.store.put_bytes("reports/drift.html", data)

    chunks = list(backend.store.open_stream(stored.uri, chunk_size=MiB))

    assert len(chunks) >= 3
    assert all(0 < len(c) <= MiB for c in chunks)
    assert b"".join(chunks) == data


def test_missing_artifact_raises_artifact_not_found_naming_the_uri(backend: Backend) -> None:
    uri = backend.store.put_bytes("models/a/1/model.joblib", b"x").uri.replace("/1/", "/2/")

    assert not backend.store.exists(uri)
    with pytest.raises(ArtifactNotFound, match=uri):
        backend.store.get_bytes(uri)
    with pytest.raises(KeyError):
        backend.store.open_stream(uri)


def test_delete_removes_the_artifact_and_is_idempotent(backend: Backend) -> None:
    stored = backend.store.put_bytes("models/a/1/model.joblib", b"x")

    backend.store.delete(stored.uri)

    assert not backend.store.exists(stored.uri)
    with pytest.raises(ArtifactNotFound):
        backend.store.get_bytes(stored.uri)
    backend.store.delete(stored.uri)


def test_put_overwrites_an_existing_key(backend: Backend) -> None:
    backend.store.put_bytes("aliases/champion.json", b"old")
    stored = backend.store.put_bytes("aliases/champion.json", b"new")

    assert backend.store.get_bytes(stored.uri) == b"new"


@pytest.mark.parametrize(
    "key", ["../escape", "/etc/passwd", "a/../../escape", "a//b", "a/./b", "", "a\\..\\b"]
)
def test_keys_that_could_escape_the_root_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(ArtifactError, match="key"):
        backend.store.put_bytes(key, b"x")
    with pytest.raises(ArtifactError, match="key"):
        backend.store.put_stream(key, GeneratedStream(10))  # type: ignore[arg-type]


def test_uris_outside_the_root_are_refused(backend: Backend) -> None:
    stored = backend.store.put_bytes("models/a/1/model.joblib", b"x")
    outside = [stored.uri.replace("/models/a/1/", "/models/a/1/../../../../"), backend.store.root]
    outside.append(stored.uri.replace(backend.store.root, backend.store.root + "-other"))

    for uri in outside:
        with pytest.raises(ArtifactError, match=r"not under the artifact root|key"):
            backend.store.delete(uri)
    assert backend.store.exists(stored.uri)


def test_a_broken_source_stream_leaves_no_artifact(backend: Backend, request: pytest.FixtureRequest) -> None:
    store = backend.make(part_size=5 * MiB) if backend.name == "s3" else backend.store
    uri = store.put_bytes("keep.txt", b"k").uri.replace("keep.txt", "broken.bin")

    with pytest.raises(OSError, match="broke"):  # the source's own error, not disguised as ours
        store.put_stream("broken.bin", GeneratedStream(12 * MiB, fail_after=7 * MiB))  # type: ignore[arg-type]

    assert not store.exists(uri)
    if backend.name == "file":
        leftovers = [p.name for p in Path(store.root.removeprefix("file://")).iterdir()]
        assert leftovers == ["keep.txt"]
    else:  # the multipart upload was aborted, not left to accumulate parts
        client = request.getfixturevalue("s3_server").client()
        assert (
            client.list_multipart_uploads(Bucket=request.getfixturevalue("s3_bucket")).get("Uploads", [])
            == []
        )


def test_wrong_credentials_give_a_clear_artifact_error(s3_server: S3Server, s3_bucket: str) -> None:
    good = artifact_store(s3_server.settings(artifact_root=f"s3://{s3_bucket}"))
    uri = good.put_bytes("m.bin", b"x").uri
    bad = artifact_store(
        s3_server.settings(artifact_root=f"s3://{s3_bucket}", s3_secret_access_key="not-the-secret")
    )

    for action in (
        lambda: bad.put_bytes("m2.bin", b"x"),
        lambda: bad.get_bytes(uri),
        lambda: bad.exists(uri),
    ):
        with pytest.raises(
            ArtifactError, match=r"refused the credentials.*DRIFTLOOP_S3_SECRET_ACCESS_KEY"
        ) as err:
            action()
        assert not isinstance(err.value, ArtifactNotFound)
        assert f"s3://{s3_bucket}/" in str(err.value)


def test_missing_bucket_is_created_on_first_put_only_when_allowed(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = random_bucket_name()
    settings = s3_server.settings(artifact_root=f"s3://{bucket}/p")
    refusing = S3ArtifactStore(
        settings.artifact_root,
        endpoint_url=settings.s3_endpoint_url,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        create_bucket=False,
    )
    with pytest.raises(ArtifactError, match=f"bucket '{bucket}' does not exist"):
        refusing.put_bytes("a.bin", b"x")
    with pytest.raises(ArtifactNotFound, match="does not exist"):
        refusing.get_bytes(f"s3://{bucket}/p/a.bin")

    try:
        stored = artifact_store(settings).put_bytes("a.bin", b"x")  # loopback endpoint: created on demand
        assert client.get_object(Bucket=bucket, Key="p/a.bin")["Body"].read() == b"x"
        assert stored.uri == f"s3://{bucket}/p/a.bin"
    finally:
        client.delete_object(Bucket=bucket, Key="p/a.bin")
        client.delete_bucket(Bucket=bucket)


def test_unreachable_endpoint_says_how_to_start_one(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, artifact_root="s3://nowhere/x", s3_endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(ArtifactError, match=r"unreachable.*infra up --s3"):
        artifact_store(settings).put_bytes("a.bin", b"x")


def test_store_for_uri_reads_s3_artifacts_of_an_old_root_once_it_is_allowed(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    uri = artifact_store(s3_server.settings(artifact_root=f"s3://{s3_bucket}/old")).put_bytes("m", b"x").uri
    file_settings = s3_server.settings(data_dir=tmp_path)  # artifact_root unset: file:// under data_dir
    allowed = s3_server.settings(data_dir=tmp_path, artifact_allowed_prefixes=[f"s3://{s3_bucket}/old"])

    with pytest.raises(ArtifactOutsideRoot, match="DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES"):
        store_for_uri(file_settings, uri)
    assert store_for_uri(allowed, uri).get_bytes(uri) == b"x"
