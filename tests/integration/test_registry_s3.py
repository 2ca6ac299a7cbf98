"""Registry artifacts on a real S3-compatible server: upload, reference by URI, verified download, corruption."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w"}


def test_s3_artifacts_are_stored_hashed_and_verified_on_download(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    settings = s3_server.settings(
        data_dir=tmp_path,
        artifact_root=f"s3://{s3_bucket}/registry",
        artifact_allowed_prefixes=[f"s3://{s3_bucket}/elsewhere"],
        registry_tokens={"w": "wes:writer"},
        registry_relay_enabled=False,
    )
    name = f"m-{uuid4().hex[:8]}"
    data = b"a pickled pipeline" * 1000
    with TestClient(create_app(bootstrap(settings))) as client:
        client.post("/models", json={"name": name}, headers=WRITER)
        uploaded = client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("model.joblib", io.BytesIO(data))},
            headers=WRITER,
        ).json()
        assert uploaded["artifact_uri"].startswith(f"s3://{s3_bucket}/registry/models/{name}/")
        assert uploaded["artifact_sha256"] == hashlib.sha256(data).hexdigest()

        s3_server.client().put_object(Bucket=s3_bucket, Key="elsewhere/model.joblib", Body=data)
        referenced = client.post(
            f"/models/{name}/versions",
            json={"artifact_uri": f"s3://{s3_bucket}/elsewhere/model.joblib"},
            headers=WRITER,
        )
        assert referenced.status_code == 201 and referenced.json()["artifact_size"] == len(data)
        missing = client.post(
            f"/models/{name}/versions",
            json={"artifact_uri": f"s3://{s3_bucket}/elsewhere/nope.joblib"},
            headers=WRITER,
        )
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "artifact_uri"
        s3_server.client().put_object(Bucket=s3_bucket, Key="private/model.joblib", Body=data)
        for outside in (f"s3://{s3_bucket}/private/model.joblib", f"s3://{s3_bucket}/registry/../private/x"):
            refused = client.post(f"/models/{name}/versions", json={"artifact_uri": outside}, headers=WRITER)
            assert refused.status_code == 422 and refused.json()["error"]["field"] == "artifact_uri"

        assert client.get(f"/models/{name}/versions/1/artifact").content == data
        s3_server.client().put_object(Bucket=s3_bucket, Key="elsewhere/model.joblib", Body=b"tampered")
        corrupted = client.get(f"/models/{name}/versions/2/artifact")
        assert corrupted.status_code == 409 and corrupted.json()["error"]["field"] == "artifact_sha256"
