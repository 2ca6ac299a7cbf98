"""A version's artifact stays in its root: nothing else on the registry's disk can be registered or served."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.integration.test_registry_api import WRITER, create_model, registry_settings, upload_version

pytestmark = pytest.mark.integration


def _register(client: TestClient, name: str, uri: str) -> tuple[int, dict[str, object]]:
    answer = client.post(f"/models/{name}/versions", json={"artifact_uri": uri}, headers=WRITER)
    return answer.status_code, answer.json()


def test_files_outside_the_artifact_root_are_refused_naming_the_setting(tmp_path: Path) -> None:
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(registry_settings(tmp_path)))) as client:
        create_model(client, name)
        root = str(upload_version(client, name)["artifact_uri"]).split("/models/")[0]
        database = (tmp_path / "registry.db").resolve()
        for uri in (
            "file:///etc/passwd",
            f"{root}/../registry.db",  # path traversal
            f"{root}/models/%2E%2E/..%2Fregistry.db",  # the same, percent-encoded
            database.as_uri(),
            "s3://some-bucket/model.joblib",
        ):
            status, body = _register(client, name, uri)
            assert status == 422, (uri, body)
            assert body["error"]["field"] == "artifact_uri"  # type: ignore[index]
            message = body["error"]["message"]  # type: ignore[index]
            assert "DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES" in message or "never served" in message
        assert client.get(f"/models/{name}/versions").json()["items"][0]["version"] == 1  # nothing added
        link = tmp_path / "artifacts" / "models" / "passwd"
        link.symlink_to("/etc/passwd")
        assert _register(client, name, link.as_uri())[0] == 422


def test_an_allowed_prefix_can_be_registered_and_downloaded(tmp_path: Path) -> None:
    team = tmp_path / "team-models"
    team.mkdir()
    (team / "m.joblib").write_bytes(b"a team's model")
    settings = registry_settings(tmp_path / "data", artifact_allowed_prefixes=[team.as_uri()])
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        create_model(client, name)
        status, body = _register(client, name, f"{team.as_uri()}/m.joblib")
        assert status == 201, body
        assert client.get(f"/models/{name}/versions/1/artifact").content == b"a team's model"
        (tmp_path / "elsewhere.joblib").write_bytes(b"not allowed")
        assert _register(client, name, (tmp_path / "elsewhere.joblib").as_uri())[0] == 422


def test_the_registry_database_is_never_served_even_when_a_prefix_covers_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = registry_settings(data, artifact_allowed_prefixes=[tmp_path.as_uri()])
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        create_model(client, name)
        upload_version(client, name)
        client.post(f"/models/{name}/webhooks", json={"url": "https://93.184.216.34/x"}, headers=WRITER)
        database = (data / "registry.db").resolve()
        status, body = _register(client, name, database.as_uri())
        assert status == 422 and "never served" in body["error"]["message"], body  # type: ignore[index]
        # a version registered before the root was enforced points at the database: it is not served
        with sqlite3.connect(database) as conn:
            conn.execute("UPDATE model_versions SET artifact_uri = ?", (database.as_uri(),))
        refused = client.get(f"/models/{name}/versions/1/artifact")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["field"] == "artifact_uri" and b"secret" not in refused.content
