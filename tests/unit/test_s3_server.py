"""The local S3 server's start-up logic that needs no server: configuration and missing-tool errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.infra.s3_server import endpoint_url, ensure_s3proxy_jars, render_properties, start_s3_server
from driftloop.process import InfraError


def test_properties_configure_one_identity_and_the_filesystem_backend() -> None:
    text = render_properties(
        host="127.0.0.1", port=9000, basedir=Path("/data/buckets"), access_key="ak", secret_key="s\\é t"
    )
    props = dict(line.split("=", 1) for line in text.splitlines())

    assert props["s3proxy.endpoint"] == "http://127.0.0.1:9000"
    assert props["s3proxy.identity"] == "ak"
    assert props["s3proxy.credential"] == "s\\\\\\u00e9 t"  # escaped for java.util.Properties
    assert props["jclouds.provider"] == "filesystem"
    assert props["jclouds.filesystem.basedir"] == "/data/buckets"


def test_ipv6_hosts_are_bracketed_in_the_endpoint() -> None:
    assert endpoint_url("::1", 9000) == "http://[::1]:9000"
    assert endpoint_url("localhost", 9000) == "http://localhost:9000"


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(InfraError, match=r"needs `java` on PATH.*openjdk-17"):
        start_s3_server("127.0.0.1", 1, tmp_path / "data", tmp_path / "s3.log", "ak", "sk")


def test_missing_maven_is_a_clear_error_when_the_jars_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(InfraError, match=r"needs `mvn` on PATH.*maven"):
        ensure_s3proxy_jars(cache_dir=tmp_path / "empty-cache")
