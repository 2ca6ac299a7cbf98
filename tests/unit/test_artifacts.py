"""The artifact store's pure logic: which keys and URIs are accepted, and how roots are parsed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactOutsideRoot,
    FileArtifactStore,
    FileRoot,
    S3ArtifactStore,
    S3Root,
    _HashingReader,
    allowed_roots,
    artifact_store,
    file_uri_path,
    parse_root,
    parse_s3_uri,
    store_for_uri,
    validate_key,
)
from shared.settings import Settings


@pytest.mark.parametrize(
    "key", ["model.joblib", "models/churn/3/model.joblib", "a b/ü.bin", "x/.hidden", "a..b"]
)
def test_relative_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "a\\b",
        "a\x00b",
        "a\nb",
    ],
)
def test_keys_that_could_escape_or_are_ambiguous_are_refused(key: str) -> None:
    with pytest.raises(ArtifactError, match="key"):
        validate_key(key)


def test_s3_roots_split_into_bucket_and_prefix() -> None:
    assert parse_root("s3://models") == S3Root("models", "")
    assert parse_root("s3://models/") == S3Root("models", "")
    assert parse_root("s3://models/team/a/") == S3Root("models", "team/a")


@pytest.mark.parametrize(
    "root", ["s3://Bad_Bucket/x", "s3://ab", "s3:///x", "s3://b..c/x", "s3://bucket/../x"]
)
def test_invalid_s3_roots_are_refused(root: str) -> None:
    with pytest.raises(ArtifactError):
        parse_root(root)


def test_file_roots_accept_uris_and_plain_paths(tmp_path: Path) -> None:
    assert parse_root(tmp_path.as_uri()) == FileRoot(tmp_path.resolve())
    assert parse_root(str(tmp_path)) == FileRoot(tmp_path.resolve())


@pytest.mark.parametrize(
    "root",
    ["ftp://host/x", "file://otherhost/x", "file:relative/x", "file:///x?version=2", "gs://bucket/x", ""],
)
def test_unsupported_roots_are_refused_with_the_root_named(root: str) -> None:
    with pytest.raises(ArtifactError, match=r"root|file://|URI"):
        parse_root(root)


def test_s3_uris_round_trip_between_keys_and_uris() -> None:
    root = S3Root("models", "team")

    uri = root.uri_for("churn/3/model.joblib")

    assert uri == "s3://models/team/churn/3/model.joblib"
    assert root.object_key("churn/3/model.joblib") == "team/churn/3/model.joblib"
    assert root.key_for(uri) == "churn/3/model.joblib"
    assert S3Root("models").uri_for("a/b") == "s3://models/a/b"
    assert parse_s3_uri("s3://models/a/b") == ("models", "a/b")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other/team/a",  # another bucket
        "s3://models/teamx/a",  # a sibling prefix sharing the first letters
        "s3://models/team",  # the root itself
        "s3://models/team/a/../../x",
        "file:///team/a",
    ],
)
def test_s3_uris_outside_the_root_are_refused(uri: str) -> None:
    with pytest.raises(ArtifactError):
        S3Root("models", "team").key_for(uri)


def test_file_uris_round_trip_with_percent_encoding() -> None:
    root = FileRoot(Path("/srv/driftloop artifacts"))

    uri = root.uri_for("churn/3/model ü.joblib")

    assert uri == "file:///srv/driftloop%20artifacts/churn/3/model%20%C3%BC.joblib"
    assert file_uri_path(uri) == Path("/srv/driftloop artifacts/churn/3/model ü.joblib")
    assert root.key_for(uri) == "churn/3/model ü.joblib"
    assert root.key_for("file://localhost/srv/driftloop%20artifacts/a") == "a"


@pytest.mark.parametrize(
    "uri",
    [
        "file:///srv/other/a",
        "file:///srv/driftloop-x/a",
        "file:///srv/driftloop/../etc/passwd",
        "s3://b/srv/a",
    ],
)
def test_file_uris_outside_the_root_are_refused(uri: str) -> None:
    with pytest.raises(ArtifactError):
        FileRoot(Path("/srv/driftloop")).key_for(uri)


def test_not_found_is_both_a_key_error_and_an_artifact_error_with_a_plain_message() -> None:
    err = ArtifactNotFound("no artifact at s3://b/k")

    assert isinstance(err, KeyError)
    assert isinstance(err, ArtifactError)
    assert str(err) == "no artifact at s3://b/k"


class ShortReads(io.RawIOBase):
    """A source that returns at most 3 bytes per read, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(3 if size < 0 else min(size, 3))


def test_hashing_reader_fills_each_read_and_hashes_what_it_returned() -> None:
    reader = _HashingReader(ShortReads(b"0123456789"))  # type: ignore[arg-type]

    assert reader.read(8) == b"01234567"  # one boto3 read is one part: it must not come back short
    assert reader.read(8) == b"89"
    assert reader.read(8) == b""
    assert reader.size == 10
    assert reader.digest.hexdigest() == "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    assert not reader.seekable()  # so boto3 never seeks back and reads a byte twice


def test_the_root_scheme_picks_the_backend(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    default = artifact_store(settings)
    s3 = artifact_store(settings, "s3://models/team")

    assert isinstance(default, FileArtifactStore)
    assert default.root == (tmp_path / "artifacts").resolve().as_uri()
    assert isinstance(s3, S3ArtifactStore)
    assert s3.root == "s3://models/team"
    allowed = Settings(data_dir=tmp_path, artifact_allowed_prefixes=["s3://old-bucket", "file:///elsewhere"])
    assert isinstance(store_for_uri(allowed, "s3://old-bucket/a/b"), S3ArtifactStore)
    assert store_for_uri(allowed, "file:///elsewhere/a/b").root == "file:///elsewhere"


def _root_with_files(tmp_path: Path) -> tuple[Settings, str]:
    """Default settings (data folder ``tmp_path/data``) with one artifact, a database and escape hatches."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    root = data / "artifacts"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.bin").write_bytes(b"model")
    (data / "registry.db").write_bytes(b"webhook secrets")
    (data / "registry.db-wal").write_bytes(b"more secrets")
    (data / "kafka").mkdir()
    (data / "kafka" / "log").write_bytes(b"broker log")
    (root / "models" / "link").symlink_to("/etc/passwd")
    (root / "models" / "db").symlink_to(data / "registry.db")
    return settings, root.resolve().as_uri()


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "file://localhost/etc/passwd",
        "{root}/../registry.db",
        "{root}/models/%2e%2e/%2E%2E/registry.db",
        "{root}/models/..%2f..%2fregistry.db",
        "{root}/models/link",
        "{root}/models/db",
        "{root}/../registry.db-wal",
        "{root}/../kafka/log",
        "{root}",
        "s3://any-bucket/models/m.bin",
    ],
)
def test_uris_outside_the_root_are_refused_naming_the_setting(tmp_path: Path, uri: str) -> None:
    settings, root = _root_with_files(tmp_path)
    with pytest.raises(ArtifactOutsideRoot, match=r"DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES|never served"):
        store_for_uri(settings, uri.format(root=root)).get_bytes(uri.format(root=root))


@pytest.mark.parametrize("uri", ["file://db-host/etc/passwd", "file:///x%00y", "http://127.0.0.1/m"])
def test_uris_no_store_can_read_are_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError):
        store_for_uri(Settings(data_dir=tmp_path), uri)


@pytest.mark.parametrize(
    "uri", ["{root}/models/m.bin", "file://LOCALHOST{path}/models/m.bin", "{root}/models/../models/m.bin"]
)
def test_uris_under_the_root_are_read_in_any_spelling(tmp_path: Path, uri: str) -> None:
    settings, root = _root_with_files(tmp_path)
    uri = uri.format(root=root, path=root.removeprefix("file://"))
    assert store_for_uri(settings, uri).get_bytes(uri) == b"model"


def test_an_allowed_prefix_is_readable_but_never_opens_the_database(tmp_path: Path) -> None:
    settings, _ = _root_with_files(tmp_path)
    shared = tmp_path / "team-models"
    shared.mkdir()
    (shared / "m.bin").write_bytes(b"team model")
    wide = settings.model_copy(update={"artifact_allowed_prefixes": [shared.as_uri(), tmp_path.as_uri()]})
    uri = f"{shared.as_uri()}/m.bin"

    assert store_for_uri(wide, uri).get_bytes(uri) == b"team model"
    with pytest.raises(ArtifactOutsideRoot, match="never served"):
        store_for_uri(wide, (tmp_path / "data" / "registry.db").as_uri())
    with pytest.raises(ArtifactOutsideRoot, match="never served"):
        store_for_uri(wide, (tmp_path / "data" / "kafka" / "log").as_uri())
    with pytest.raises(ArtifactOutsideRoot, match="never served"):  # as a case-insensitive disk reads it
        store_for_uri(wide, (tmp_path / "data" / "REGISTRY.DB").as_uri())


def test_a_root_holding_the_data_folder_or_a_bad_prefix_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="holds the data folder"):
        allowed_roots(Settings(data_dir=tmp_path / "data", artifact_root=tmp_path.as_uri()))
    with pytest.raises(ArtifactError, match="DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES entry 'ftp://x'"):
        allowed_roots(Settings(data_dir=tmp_path, artifact_allowed_prefixes=["ftp://x"]))


@pytest.mark.parametrize(
    ("endpoint", "created"),
    [
        ("http://127.0.0.1:9000", True),
        ("http://localhost:9000", True),
        ("https://s3.example.com", False),
        ("", False),
    ],
)
def test_buckets_are_created_on_demand_only_for_a_local_endpoint(endpoint: str, created: bool) -> None:
    store = S3ArtifactStore("s3://models", endpoint_url=endpoint)

    assert store.create_bucket is created
    assert S3ArtifactStore("s3://models", endpoint_url=endpoint, create_bucket=False).create_bucket is False
