"""Artifact store: models and datasets under one URI root, ``file://`` (default) or ``s3://bucket/prefix``.

Services store and read artifacts only through :class:`ArtifactStore`, so moving from a laptop to S3, MinIO
or any S3-compatible server is a settings change (``DRIFTLOOP_ARTIFACT_ROOT``, ``DRIFTLOOP_S3_*``). Every
write streams and returns the sha256 and size it wrote, which the registry records next to the URI.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from shared.settings import Settings, is_loopback

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_PART_SIZE = 8 << 20
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


class ArtifactError(RuntimeError):
    """An artifact could not be stored or read; the message names the URI and what to check."""


class ArtifactNotFound(ArtifactError, KeyError):
    """No artifact at this URI (a ``KeyError`` too, so lookups read naturally)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ArtifactOutsideRoot(ArtifactError):
    """The URI lies outside the artifact root and the allowed prefixes, or names a protected path."""


@dataclass(frozen=True)
class StoredArtifact:
    """Where an artifact was written and what was written: the registry keeps all three."""

    uri: str
    sha256: str
    size: int


class ArtifactStore(Protocol):
    """One interface for every backend; keys are relative paths like ``models/churn/3/model.joblib``."""

    root: str

    def put_stream(self, key: str, stream: BinaryIO) -> StoredArtifact: ...

    def put_bytes(self, key: str, data: bytes) -> StoredArtifact: ...

    def open_stream(self, uri: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]: ...

    def get_bytes(self, uri: str) -> bytes: ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> None: ...


# --- pure logic: keys and URIs -------------------------------------------------------------------------


def validate_key(key: str) -> str:
    """Return ``key`` if it is a relative path that stays under the root; refuse anything that could escape."""
    if not isinstance(key, str) or not key:
        raise ArtifactError(f"artifact key must be a non-empty relative path, got {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ArtifactError(f"artifact key {key!r} must be a relative path with '/' separators")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise ArtifactError(f"artifact key {key!r} contains control characters")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ArtifactError(
                f"artifact key {key!r} may not contain empty, '.' or '..' segments (it must stay under the root)"
            )
    return key


@dataclass(frozen=True)
class FileRoot:
    """A ``file://`` root: an absolute local folder."""

    path: Path

    @functools.cached_property
    def uri(self) -> str:  # a root is compared on every artifact read: its URI is written once
        return self.path.as_uri()

    @functools.cached_property
    def folded(self) -> Path:
        """The path case-folded, as :func:`_protected` compares paths."""
        return _folded(self.path)

    def uri_for(self, key: str) -> str:
        return (self.path / validate_key(key)).as_uri()

    def key_for(self, uri: str) -> str:
        path = file_uri_path(uri)
        try:
            rel = PurePosixPath(path).relative_to(PurePosixPath(self.path))
        except ValueError:
            raise ArtifactError(f"{uri} is not under the artifact root {self.uri}") from None
        return validate_key(rel.as_posix())


@dataclass(frozen=True)
class S3Root:
    """An ``s3://bucket/prefix`` root; ``prefix`` has no leading or trailing slash and may be empty."""

    bucket: str
    prefix: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def key_for(self, uri: str) -> str:
        bucket, object_key = parse_s3_uri(uri)
        head = f"{self.prefix}/" if self.prefix else ""
        if bucket != self.bucket or not object_key.startswith(head):
            raise ArtifactError(f"{uri} is not under the artifact root {self.uri}")
        return validate_key(object_key[len(head) :])


def file_uri_path(uri: str) -> Path:
    """The absolute local path of a ``file://`` URI (percent-decoded, as ``Path.as_uri`` encodes it)."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ArtifactError(f"{uri!r} is not a file:// URI")
    if parts.netloc.lower() not in ("", "localhost"):
        raise ArtifactError(f"{uri!r} names host {parts.netloc!r}; file:// URIs must be local (file:///path)")
    if parts.query or parts.fragment:
        raise ArtifactError(f"{uri!r} may not have a query or fragment")
    path = unquote(parts.path)
    if "\x00" in path:
        raise ArtifactError(f"{uri!r} holds a NUL character")
    if not path.startswith("/"):
        raise ArtifactError(f"{uri!r} must hold an absolute path (file:///path)")
    return Path(path)


def validate_bucket(bucket: str, uri: str) -> str:
    """Refuse names S3 would reject, so a typo fails here with the URI rather than as a signature error."""
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ArtifactError(
            f"{uri!r}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')"
        )
    return bucket


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; the key part may be empty (a bucket root)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        raise ArtifactError(f"{uri!r} is not an s3:// URI")
    if parts.query or parts.fragment:
        raise ArtifactError(f"{uri!r} may not have a query or fragment")
    return validate_bucket(parts.netloc, uri), parts.path.lstrip("/")


def parse_root(root: str) -> FileRoot | S3Root:
    """Parse an artifact root: ``file:///abs/path``, ``s3://bucket[/prefix]`` or a plain local path.

    Kept per root: a configured root is resolved once, not on every artifact read (a registration reads
    the roots several times; resolving each costs a system call per folder of its path)."""
    return _parse_root(root)


@functools.lru_cache(maxsize=256)
def _parse_root(root: str) -> FileRoot | S3Root:
    if not root:
        raise ArtifactError("artifact root is empty; set DRIFTLOOP_ARTIFACT_ROOT or leave it unset for files")
    scheme = urlsplit(root).scheme
    if scheme == "s3":
        bucket, prefix = parse_s3_uri(root)
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        return S3Root(bucket, prefix)
    if scheme == "file":
        path = file_uri_path(root)
    elif scheme == "":
        path = Path(root).expanduser()
    else:
        raise ArtifactError(f"artifact root {root!r} has unsupported scheme {scheme!r}; use file:// or s3://")
    return FileRoot(path.resolve())


# --- file:// backend -----------------------------------------------------------------------------------


class FileArtifactStore:
    """Artifacts as files under a local folder; each write lands whole or not at all (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        parsed = parse_root(str(root))
        if not isinstance(parsed, FileRoot):
            raise ArtifactError(f"{root} is not a file:// root")
        self._root = parsed
        self.root = parsed.uri

    def _path(self, uri: str) -> Path:
        """The real path behind ``uri`` (``..``, symlinks resolved), refused unless it is under the root."""
        path = Path(os.path.realpath(file_uri_path(uri)))
        if path == self._root.path or not path.is_relative_to(self._root.path):
            raise ArtifactOutsideRoot(f"{uri} is not under the artifact root {self.root}")
        return path

    def put_stream(self, key: str, stream: BinaryIO) -> StoredArtifact:
        target = self._root.path / validate_key(key)
        uri = target.as_uri()
        digest, size = hashlib.sha256(), 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise ArtifactError(f"cannot write {uri}: {exc}") from exc
        try:  # errors of the source stream pass through as they are; ours name the URI
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(DEFAULT_CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                    with _writing(uri):
                        out.write(chunk)
                with _writing(uri):
                    out.flush()
                    os.fsync(out.fileno())
            with _writing(uri):
                os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; artifacts are read by other services
                os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredArtifact(uri=uri, sha256=digest.hexdigest(), size=size)

    def put_bytes(self, key: str, data: bytes) -> StoredArtifact:
        return self.put_stream(key, io.BytesIO(data))

    def open_stream(self, uri: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        path = self._path(uri)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactNotFound(f"no artifact at {uri}") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {uri}: {exc}") from exc
        return _iter_file(f, chunk_size)

    def get_bytes(self, uri: str) -> bytes:
        return b"".join(self.open_stream(uri))

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> None:
        """Remove the artifact; deleting one that is already gone is fine (retries stay harmless)."""
        path = self._path(uri)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot delete {uri}: {exc}") from exc


@contextmanager
def _writing(uri: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ArtifactError(f"cannot write {uri}: {exc}") from exc


def _iter_file(f: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with f:
        while chunk := f.read(chunk_size):
            yield chunk


# --- s3:// backend -------------------------------------------------------------------------------------


class _HashingReader:
    """A read-only, non-seekable view of a stream that hashes and counts what boto3 reads.

    Being non-seekable makes boto3 read each byte exactly once, in order, a part at a time, so the digest
    is that of the uploaded object and memory stays bounded by the part size.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int | None = -1) -> bytes:
        # fill the request: boto3 turns each read into one part, and S3 refuses parts under 5 MiB
        if size is None or size < 0:
            data = self._stream.read()
        else:
            pieces, missing = [], size
            while missing > 0 and (piece := self._stream.read(missing)):
                pieces.append(piece)
                missing -= len(piece)
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # no copy for a whole read
        self.digest.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class S3ArtifactStore:
    """Artifacts as objects under ``s3://bucket/prefix`` on any S3 API (AWS, MinIO, S3Proxy).

    ``create_bucket`` creates a missing bucket on the first write; by default only for a loopback
    endpoint (the local S3 server), so a typo in a production bucket name fails instead of creating one.
    """

    def __init__(
        self,
        root: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = 4,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        parsed = parse_root(root)
        if not isinstance(parsed, S3Root):
            raise ArtifactError(f"{root} is not an s3:// root")
        if part_size < 5 << 20:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum for multipart parts)")
        self._root = parsed
        self.root = parsed.uri
        self.endpoint_url = endpoint_url or None
        if create_bucket is None:  # only the local S3 server gets buckets made on demand
            host = urlsplit(self.endpoint_url).hostname if self.endpoint_url else None
            create_bucket = host is not None and is_loopback(host)
        self.create_bucket = create_bucket
        self.region = region
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                # path-style works on S3Proxy, MinIO and AWS; AWS alone is left to choose its own style
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=max_concurrency
        )
        # a non-seekable upload buffers up to this many parts; the default (10) would hold 80 MB
        self._transfer.max_in_memory_upload_chunks = max_concurrency
        self._bucket_ready = False

    @property
    def _where(self) -> str:
        return f"the S3 endpoint {self.endpoint_url or 'AWS (default endpoint)'}"

    def _error(self, exc: Exception, uri: str, action: str) -> ArtifactError:
        """Turn a boto error into one that names the URI and says what to check."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in _MISSING_BUCKET_CODES:
                message = f"bucket {self._root.bucket!r} does not exist at {self._where}"
                if action == "write":  # deleted since we checked it
                    self._bucket_ready = False
                    return ArtifactError(f"cannot write {uri}: {message}")
                return ArtifactNotFound(f"no artifact at {uri}: {message}")
            if code in _MISSING_KEY_CODES:
                return ArtifactNotFound(f"no artifact at {uri}")
            if code in _AUTH_CODES:
                return ArtifactError(
                    f"cannot {action} {uri}: {self._where} refused the credentials ({code}); check "
                    f"DRIFTLOOP_S3_ACCESS_KEY_ID and DRIFTLOOP_S3_SECRET_ACCESS_KEY and the bucket's permissions"
                )
            return ArtifactError(f"cannot {action} {uri}: {self._where} answered {code}: {exc}")
        if isinstance(exc, EndpointConnectionError):
            return ArtifactError(
                f"cannot {action} {uri}: {self._where} is unreachable; check DRIFTLOOP_S3_ENDPOINT_URL "
                f"or start the local S3 server with `driftloop infra up --s3`"
            )
        if isinstance(exc, NoCredentialsError):
            return ArtifactError(
                f"cannot {action} {uri}: no S3 credentials; set DRIFTLOOP_S3_ACCESS_KEY_ID and "
                f"DRIFTLOOP_S3_SECRET_ACCESS_KEY"
            )
        return ArtifactError(f"cannot {action} {uri}: {exc}")

    def _ensure_bucket(self, uri: str) -> None:
        """Check the bucket once per store before writing; create it when allowed."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._bucket_ready:
            return
        bucket = self._root.bucket
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._error(exc, uri, "write") from exc
            if not self.create_bucket:
                raise ArtifactError(
                    f"cannot write {uri}: bucket {bucket!r} does not exist at {self._where}; create it, "
                    f"or fix DRIFTLOOP_ARTIFACT_ROOT"
                ) from None
            self._create_bucket(uri)
        except BotoCoreError as exc:
            raise self._error(exc, uri, "write") from exc
        self._bucket_ready = True

    def _create_bucket(self, uri: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Bucket": self._root.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc, uri, "create the bucket for") from exc
        except BotoCoreError as exc:
            raise self._error(exc, uri, "create the bucket for") from exc

    def put_stream(self, key: str, stream: BinaryIO) -> StoredArtifact:
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._root.object_key(key)
        uri = self._root.uri_for(key)
        self._ensure_bucket(uri)
        reader = _HashingReader(stream)
        try:
            self._client.upload_fileobj(reader, self._root.bucket, object_key, Config=self._transfer)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri, "write") from exc
        return StoredArtifact(uri=uri, sha256=reader.digest.hexdigest(), size=reader.size)

    def put_bytes(self, key: str, data: bytes) -> StoredArtifact:
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._root.object_key(key)
        uri = self._root.uri_for(key)
        self._ensure_bucket(uri)
        try:
            self._client.put_object(Bucket=self._root.bucket, Key=object_key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri, "write") from exc
        return StoredArtifact(uri=uri, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def _object(self, uri: str) -> str:
        return self._root.object_key(self._root.key_for(uri))

    def open_stream(self, uri: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object(uri)
        try:
            body = self._client.get_object(Bucket=self._root.bucket, Key=object_key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri, "read") from exc
        return self._iter_body(body, uri, chunk_size)

    def _iter_body(self, body: Any, uri: str, chunk_size: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(chunk_size)
        except BotoCoreError as exc:
            raise self._error(exc, uri, "read") from exc
        finally:
            body.close()

    def get_bytes(self, uri: str) -> bytes:
        return b"".join(self.open_stream(uri))

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object(uri)
        try:
            self._client.head_object(Bucket=self._root.bucket, Key=object_key)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES | _MISSING_BUCKET_CODES:
                return False
            raise self._error(exc, uri, "check") from exc
        except BotoCoreError as exc:
            raise self._error(exc, uri, "check") from exc
        return True

    def delete(self, uri: str) -> None:
        """Remove the object; deleting one that is already gone is fine (S3's own semantics)."""
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object(uri)
        try:
            self._client.delete_object(Bucket=self._root.bucket, Key=object_key)
        except ClientError as exc:
            if _code(exc) in _MISSING_BUCKET_CODES:
                return
            raise self._error(exc, uri, "delete") from exc
        except BotoCoreError as exc:
            raise self._error(exc, uri, "delete") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- wiring --------------------------------------------------------------------------------------------


def artifact_store(settings: Settings, root: str | None = None) -> ArtifactStore:
    """The store for ``root`` (default: the settings' artifact root), backend chosen by its scheme."""
    root = root or settings.resolved_artifact_root
    if isinstance(parse_root(root), S3Root):
        return S3ArtifactStore(
            root,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        )
    return FileArtifactStore(root)


ALLOWED_PREFIXES_SETTING = "DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES"


def allowed_roots(settings: Settings) -> list[FileRoot | S3Root]:
    """The artifact root, then each allowed prefix: the only places artifacts are read from.

    Raises :class:`ArtifactError` for a prefix that is not a root (so a typo stops start-up), and when the
    artifact root is the data folder or holds it (the registry's database and the broker's log live there).
    """
    root = parse_root(settings.resolved_artifact_root)
    if isinstance(root, FileRoot) and _real_setting(str(settings.data_dir)).is_relative_to(root.path):
        raise ArtifactError(
            f"DRIFTLOOP_ARTIFACT_ROOT {root.uri} holds the data folder {_real(settings.data_dir)}; "
            "give artifacts a folder of their own (the default is DATA_DIR/artifacts)"
        )
    roots = [root]
    for prefix in settings.artifact_allowed_prefixes:
        try:
            roots.append(parse_root(prefix))
        except ArtifactError as exc:
            raise ArtifactError(f"{ALLOWED_PREFIXES_SETTING} entry {prefix!r}: {exc}") from None
    return roots


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


@functools.lru_cache(maxsize=256)
def _real_setting(path: str) -> Path:
    """:func:`_real` of a configured path (data folder, database), kept like :func:`parse_root`'s roots."""
    return _real(path)


def _protected(settings: Settings, path: Path, artifact_root: FileRoot | S3Root) -> bool:
    """Whether ``path`` (real) is the registry's SQLite database, or in the data folder but not in a
    ``file://`` artifact root inside it (the default root is DATA_DIR/artifacts).

    Compared case-insensitively, so ``REGISTRY.DB`` on a case-insensitive file system is refused too.
    """
    path = _folded(path)
    url = settings.resolved_registry_database_url
    if url.startswith("sqlite:///"):
        database = _folded_setting(url.removeprefix("sqlite:///").split("?", 1)[0])
        # the database and its -wal, -shm and -journal files
        if path.parent == database.parent and path.name.startswith(database.name):
            return True
    if not path.is_relative_to(_folded_setting(str(settings.data_dir))):
        return False
    return not (isinstance(artifact_root, FileRoot) and path.is_relative_to(artifact_root.folded))


def _folded(path: Path) -> Path:
    return Path(str(path).casefold())


@functools.lru_cache(maxsize=256)
def _folded_setting(path: str) -> Path:
    """:func:`_folded` of a configured path's real path, kept like :func:`_real_setting`."""
    return _folded(_real_setting(path))


def confined_root(settings: Settings, uri: str) -> FileRoot | S3Root:
    """The root (artifact root or allowed prefix) ``uri`` lies under, after normalising it.

    ``file://`` paths are percent-decoded and resolved (``..``, symlinks) before they are compared, so a
    URI cannot leave its root by spelling; ``s3://`` keys may not hold ``.``/``..``/empty segments. The
    registry's database and the data folder (but for the artifact root inside it) are never under any
    root. Raises :class:`ArtifactOutsideRoot` naming the setting that would allow the URI.
    """
    roots = allowed_roots(settings)
    scheme = urlsplit(uri).scheme
    if scheme == "file":
        path = _real(file_uri_path(uri))
        for root in roots:
            if isinstance(root, FileRoot) and path != root.path and path.is_relative_to(root.path):
                if _protected(settings, path, roots[0]):
                    raise ArtifactOutsideRoot(
                        f"{uri} is in the registry's data folder or database; it is never served"
                    )
                return root
    elif scheme == "s3":
        bucket, key = parse_s3_uri(uri)
        if key:
            validate_key(key)
        for root in roots:
            if (
                isinstance(root, S3Root)
                and bucket == root.bucket
                and (not root.prefix or key.startswith(f"{root.prefix}/"))
            ):
                return root
    else:
        raise ArtifactError(f"artifact URI {uri!r} has unsupported scheme {scheme!r}; use file:// or s3://")
    raise ArtifactOutsideRoot(
        f"{uri} is outside the artifact root {roots[0].uri}; store it there, or have an admin add its "
        f"location to {ALLOWED_PREFIXES_SETTING}"
    )


def store_for_uri(settings: Settings, uri: str) -> ArtifactStore:
    """A store that can read ``uri``, if it lies under the artifact root or an allowed prefix.

    An artifact written under an older root stays readable once that root is listed in
    ``DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES``; anything else raises :class:`ArtifactOutsideRoot`.
    """
    root = confined_root(settings, uri)
    if root.uri == parse_root(settings.resolved_artifact_root).uri:
        return artifact_store(settings)
    if isinstance(root, S3Root):
        return artifact_store(settings, root.uri)
    return FileArtifactStore(root.path)
