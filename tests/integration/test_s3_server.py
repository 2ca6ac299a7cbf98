"""The local S3 server (S3Proxy) as a user meets it: it answers signed requests, refuses a busy port, keeps data."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from driftloop.infra.s3_server import start_s3_server
from driftloop.process import InfraError, free_port
from shared.artifacts import artifact_store
from shared.settings import Settings
from tests.fixtures.s3 import S3Server, random_bucket_name

pytestmark = pytest.mark.integration


def test_server_answers_requests_signed_with_its_credentials_only(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")

    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert s3_bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    wrong = dataclasses.replace(s3_server, secret_key="wrong")
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        wrong.client().get_object(Bucket=s3_bucket, Key="a/b.txt")


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(InfraError, match=f"port 127.0.0.1:{port} is already in use"):
            start_s3_server("127.0.0.1", port, tmp_path / "data", tmp_path / "s3.log", "ak", "sk")


def test_a_restarted_server_keeps_its_objects(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = random_bucket_name()
    data_dir, log_path = tmp_path / "data", tmp_path / "s3.log"

    def settings(port: int) -> Settings:
        return s3_server.settings(
            s3_endpoint_url=f"http://127.0.0.1:{port}", artifact_root=f"s3://{bucket}/p", data_dir=tmp_path
        )

    port = free_port()
    server = start_s3_server(
        "127.0.0.1", port, data_dir, log_path, s3_server.access_key, s3_server.secret_key
    )
    try:
        stored = artifact_store(settings(port)).put_bytes("models/m/1/model.joblib", b"weights")
    finally:
        server.stop()

    port = free_port()
    server = start_s3_server(
        "127.0.0.1", port, data_dir, log_path, s3_server.access_key, s3_server.secret_key
    )
    try:
        assert artifact_store(settings(port)).get_bytes(stored.uri) == b"weights"
    finally:
        server.stop()
