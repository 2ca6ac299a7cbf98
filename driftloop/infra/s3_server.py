"""A real S3-compatible server for local use and tests: S3Proxy on its filesystem backend.

S3Proxy speaks the S3 REST API (signatures v2/v4, multipart uploads) and keeps each bucket as a folder, so
code tested against it talks to S3 exactly as in production; a mock (moto) would not catch protocol bugs.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from driftloop.infra.jars import ensure_jars, pom_property, require_tool
from driftloop.infra.progress import Progress
from driftloop.process import InfraError, ManagedProcess, ensure_port_free, port_open, spawn, wait_until

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "s3proxy"
S3PROXY_POM = DEPLOY_DIR / "pom.xml"
LOGBACK_XML = DEPLOY_DIR / "logback.xml"
MAIN_CLASS = "org.gaul.s3proxy.Main"
_AUTH_ERRORS = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"}


def s3proxy_version(pom: Path = S3PROXY_POM) -> str:
    return pom_property(pom, "s3proxy.version")


def ensure_s3proxy_jars(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The folder of S3Proxy's jars, fetched by Maven on first use (see :func:`driftloop.infra.jars.ensure_jars`)."""
    version = s3proxy_version()
    return ensure_jars(
        S3PROXY_POM,
        name="s3proxy",
        version=version,
        marker_jar=f"s3proxy-{version}.jar",
        cache_dir=cache_dir,
        progress=progress,
    )


def endpoint_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _property_value(value: str) -> str:
    """Escape for a Java ``.properties`` value: backslashes, control characters, non-ASCII, leading blanks."""
    out = []
    for i, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif not 0x20 <= ord(ch) < 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def render_properties(*, host: str, port: int, basedir: Path, access_key: str, secret_key: str) -> str:
    """S3Proxy's configuration: one identity, signature v2 or v4, buckets as folders under ``basedir``."""
    props = {
        "s3proxy.endpoint": endpoint_url(host, port),
        "s3proxy.authorization": "aws-v2-or-v4",
        "s3proxy.identity": access_key,
        "s3proxy.credential": secret_key,
        "jclouds.provider": "filesystem",
        "jclouds.filesystem.basedir": str(basedir),
    }
    return "".join(f"{key}={_property_value(value)}\n" for key, value in props.items())


def s3_ready(url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> bool:
    """True once a real signed ``ListBuckets`` succeeds; wrong credentials fail at once rather than time out."""
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1}),
    )
    try:
        client.list_buckets()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _AUTH_ERRORS:
            raise InfraError(f"the S3 server at {url} rejected the configured credentials ({code})") from exc
        return False
    except BotoCoreError:
        return False
    finally:
        client.close()
    return True


def start_s3_server(
    host: str,
    port: int,
    data_dir: Path,
    log_path: Path,
    access_key: str,
    secret_key: str,
    timeout: float = 90.0,
    *,
    cache_dir: Path | None = None,
    heap: str = "512m",
    progress: Progress | None = None,
) -> ManagedProcess:
    """Start S3Proxy on ``host:port`` and return once a signed request with these credentials succeeds.

    Buckets live as folders under ``data_dir/buckets``, so objects survive a restart; the configuration,
    which holds the secret, is written beside them readable by the owner only.
    """
    require_tool("java", "the local S3 server (S3Proxy)")
    lib = ensure_s3proxy_jars(cache_dir, progress)
    ensure_port_free("the S3 server", host, port)
    data_dir = data_dir.resolve()
    basedir = data_dir / "buckets"
    basedir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "s3proxy.properties"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            render_properties(
                host=host, port=port, basedir=basedir, access_key=access_key, secret_key=secret_key
            )
        )
    os.chmod(config, 0o600)  # an older file may have been created with wider permissions
    # C1 only (TieredStopAtLevel=1) halves start-up on a busy 2-core machine; a local server needs no C2
    argv = [
        "java", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true", f"-Dlogback.configurationFile={LOGBACK_XML}",
        "-cp", f"{lib}/*", MAIN_CLASS, "--properties", str(config),
    ]  # fmt: skip
    managed = spawn("s3proxy", argv, log_path.resolve(), cwd=data_dir)
    url = endpoint_url(host, port)
    try:
        wait_until(
            lambda: port_open(host, port) and s3_ready(url, access_key, secret_key),
            timeout=timeout,
            what=f"S3 server (S3Proxy) on {url}",
            proc=managed.proc,
            log_path=managed.log_path,
            interval=0.1,
        )
    except InfraError as exc:
        managed.stop()
        if port_open(host, port):
            # another process bound the port after our check; say so instead of showing a Java stack
            raise InfraError(
                f"cannot start the S3 server: port {host}:{port} is already in use by another process; "
                f"stop that process or choose another port in DRIFTLOOP_S3_ENDPOINT_URL"
            ) from exc
        raise
    except BaseException:
        managed.stop()
        raise
    return managed
