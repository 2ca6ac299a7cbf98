"""The registry's HTTP API on a real SQLite file and file:// artifacts: what a user of the API sees."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.settings import Settings

pytestmark = pytest.mark.integration

TOKENS = {"r-token": "rita:reader", "w-token": "wes:writer", "a-token": "ada:admin"}
READER = {"Authorization": "Bearer r-token"}
WRITER = {"Authorization": "Bearer w-token"}
ADMIN = {"Authorization": "Bearer a-token"}


def registry_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "registry_tokens": TOKENS,
        "registry_relay_enabled": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bootstrap(registry_settings(tmp_path)))) as c:
        yield c


def model_name() -> str:
    return f"churn-{uuid4().hex[:8]}"


def create_model(client: TestClient, name: str, **extra: object) -> dict[str, object]:
    body = {
        "name": name,
        "description": "churn model",
        "tags": {"team": "growth"},
        "feature_schema": {"features": [{"name": "age", "type": "integer", "min": 0}]},
        "training_recipe": {"estimator": "logreg"},
        **extra,
    }
    response = client.post("/models", json=body, headers=WRITER)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def upload_version(
    client: TestClient, name: str, data: bytes = b"model-bytes", **meta: object
) -> dict[str, object]:
    import json

    response = client.post(
        f"/models/{name}/versions/upload",
        files={"artifact": ("model.joblib", io.BytesIO(data), "application/octet-stream")},
        data={"metadata": json.dumps(meta)},
        headers=WRITER,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_models_are_created_read_searched_updated_and_deleted(client: TestClient) -> None:
    name = model_name()
    created = create_model(client, name)
    assert created["latest_version"] == 0 and created["created_by"] == "wes"
    assert client.get(f"/models/{name}").json()["feature_schema"]["features"][0]["name"] == "age"

    prefix = name[:10]
    for i in range(3):
        create_model(client, f"{prefix}-{i}", tags={"team": "risk" if i else "growth"})
    page = client.get("/models", params={"name_prefix": prefix, "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_page_token"]
    rest = client.get(
        "/models", params={"name_prefix": prefix, "limit": 2, "page_token": page["next_page_token"]}
    ).json()
    assert len(page["items"]) + len(rest["items"]) == 4 and rest["next_page_token"] is None
    risk = client.get("/models", params={"name_prefix": prefix, "tag": "team=risk"}).json()
    assert {m["name"] for m in risk["items"]} == {f"{prefix}-1", f"{prefix}-2"}

    updated = client.patch(f"/models/{name}", json={"description": "v2"}, headers=WRITER).json()
    assert updated["description"] == "v2" and updated["updated_by"] == "wes"
    assert client.delete(f"/models/{name}", headers=ADMIN).status_code == 204
    missing = client.get(f"/models/{name}")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "name"


def test_errors_are_json_naming_the_field(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    duplicate = client.post("/models", json={"name": name}, headers=WRITER)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "name"
    bad_schema = client.post(
        "/models",
        json={"name": model_name(), "feature_schema": {"features": [{"name": "x", "type": "float"}]}},
        headers=WRITER,
    )
    assert bad_schema.status_code == 422
    assert bad_schema.json()["error"]["field"].startswith("body.feature_schema.features.0.type")
    bad_name = client.post("/models", json={"name": "has space"}, headers=WRITER)
    assert bad_name.status_code == 422 and bad_name.json()["error"]["field"] == "name"
    no_version = client.get(f"/models/{name}/versions/9")
    assert no_version.status_code == 404 and no_version.json()["error"]["field"] == "version"


def test_versions_carry_artifact_hash_lineage_and_download_verified(
    client: TestClient, tmp_path: Path
) -> None:
    import hashlib

    name = model_name()
    create_model(client, name)
    first = upload_version(
        client,
        name,
        b"first",
        metrics={"auc": 0.81},
        params={"C": 1.0},
        lineage={"dataset_uri": "file:///data/train.parquet", "code_version": "abc123"},
    )
    assert first["version"] == 1 and first["artifact_sha256"] == hashlib.sha256(b"first").hexdigest()
    assert first["artifact_size"] == 5 and first["status"] == "ready"
    assert first["lineage"]["code_version"] == "abc123" and first["created_by"] == "wes"

    by_uri = client.post(
        f"/models/{name}/versions",
        json={"artifact_uri": first["artifact_uri"], "lineage": {"parent_version": 1}},
        headers=WRITER,
    )
    assert by_uri.status_code == 201 and by_uri.json()["version"] == 2
    wrong_hash = client.post(
        f"/models/{name}/versions",
        json={"artifact_uri": first["artifact_uri"], "artifact_sha256": "0" * 64},
        headers=WRITER,
    )
    assert wrong_hash.status_code == 422 and wrong_hash.json()["error"]["field"] == "artifact_sha256"

    download = client.get(f"/models/{name}/versions/1/artifact")
    assert download.status_code == 200 and download.content == b"first"

    Path(first["artifact_uri"].removeprefix("file://")).write_bytes(b"tampered")  # type: ignore[union-attr]
    corrupted = client.get(f"/models/{name}/versions/1/artifact")
    assert corrupted.status_code == 409 and corrupted.json()["error"]["code"] == "artifact_corrupted"

    listed = client.get(f"/models/{name}/versions").json()["items"]
    assert [v["version"] for v in listed] == [2, 1]


def test_twenty_concurrent_registrations_get_distinct_consecutive_versions(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    versions: list[int] = []
    errors: list[str] = []
    start = threading.Barrier(20)

    def register(i: int) -> None:
        start.wait()
        response = client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("m.joblib", io.BytesIO(f"model {i}".encode()), "application/octet-stream")},
            headers=WRITER,
        )
        if response.status_code == 201:
            versions.append(response.json()["version"])
        else:
            errors.append(response.text)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 21))
    assert client.get(f"/models/{name}").json()["latest_version"] == 20


def test_aliases_move_roll_back_and_answer_what_served_when(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    for i in range(3):
        upload_version(client, name, f"v{i}".encode())
    url = f"/models/{name}/aliases/production"
    assert client.put(url, json={"version": 1}, headers=WRITER).json()["version"] == 1
    between = datetime.now(UTC)
    assert client.put(url, json={"version": 2}, headers=WRITER).status_code == 200
    assert client.put(url, json={"version": 3, "reason": "better auc"}, headers=WRITER).status_code == 200
    resolved = client.get(url).json()
    assert resolved["version"] == 3 and resolved["artifact_sha256"]

    assert client.post(f"{url}/rollback", headers=WRITER).json()["version"] == 2
    assert client.post(f"{url}/rollback", headers=WRITER).json()["version"] == 1
    no_more = client.post(f"{url}/rollback", headers=WRITER)
    assert no_more.status_code == 409

    history = client.get(f"{url}/history").json()
    assert [(h["action"], h["version"]) for h in history] == [
        ("set", 1),
        ("moved", 2),
        ("moved", 3),
        ("rolled_back", 2),
        ("rolled_back", 1),
    ]
    assert history[2]["reason"] == "better auc"
    at = client.get(f"{url}/at", params={"time": between.isoformat()}).json()
    assert at["version"] == 1
    before_any = client.get(f"{url}/at", params={"time": "2000-01-01T00:00:00Z"}).json()
    assert before_any["version"] is None

    held = client.delete(f"/models/{name}", headers=ADMIN)
    assert held.status_code == 409 and held.json()["error"]["field"] == "force"
    assert client.delete(url, headers=WRITER).status_code == 204
    assert client.get(url).status_code == 404


def test_only_ready_versions_take_an_alias(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    upload_version(client, name, status="pending")
    url = f"/models/{name}/aliases/production"
    refused = client.put(url, json={"version": 1}, headers=WRITER)
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "version"
    ready = client.patch(f"/models/{name}/versions/1", json={"status": "ready"}, headers=WRITER)
    assert ready.json()["status"] == "ready"
    assert client.put(url, json={"version": 1}, headers=WRITER).status_code == 200
    held = client.patch(f"/models/{name}/versions/1", json={"status": "failed"}, headers=WRITER)
    assert held.status_code == 409


def test_a_reader_cannot_write_and_anonymous_callers_only_read(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    as_reader = client.post("/models", json={"name": model_name()}, headers=READER)
    assert as_reader.status_code == 403 and as_reader.json()["error"]["code"] == "forbidden"
    anonymous = client.post("/models", json={"name": model_name()})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete(f"/models/{name}", headers=WRITER).status_code == 403
    assert (
        client.post(
            "/models", json={"name": model_name()}, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    assert client.get(f"/models/{name}", headers=READER).status_code == 200


def test_closed_reads_need_a_token(tmp_path: Path) -> None:
    with TestClient(create_app(bootstrap(registry_settings(tmp_path, registry_open_reads=False)))) as c:
        assert c.get("/models").status_code == 401
        assert c.get("/models", headers=READER).status_code == 200


def test_whoami_names_the_callers_role_as_the_audit_log_would(tmp_path: Path, client: TestClient) -> None:
    assert client.get("/whoami", headers=READER).json() == {"name": "rita", "role": "reader"}
    assert client.get("/whoami", headers=WRITER).json() == {"name": "wes", "role": "writer"}
    assert client.get("/whoami").json() == {"name": "anonymous", "role": "reader"}
    assert client.get("/whoami", headers={"Authorization": "Bearer nope"}).status_code == 401
    with TestClient(create_app(bootstrap(registry_settings(tmp_path, registry_open_reads=False)))) as c:
        assert c.get("/whoami").status_code == 401


def test_every_write_is_in_the_audit_log(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    upload_version(client, name)
    client.patch(f"/models/{name}", json={"tags": {"team": "risk"}}, headers=WRITER)
    client.put(f"/models/{name}/aliases/staging", json={"version": 1}, headers=WRITER)
    client.post(f"/models/{name}/webhooks", json={"url": "http://93.184.216.34/hook"}, headers=WRITER)
    client.delete(f"/models/{name}", params={"force": True}, headers=ADMIN)
    entries = client.get("/audit", params={"model": name}).json()["items"]
    assert [e["action"] for e in reversed(entries)] == [
        "model.create",
        "version.register",
        "model.update",
        "alias.set",
        "webhook.create",
        "model.delete",
    ]
    update = next(e for e in entries if e["action"] == "model.update")
    assert update["before"] == {"tags": {"team": "growth"}} and update["after"] == {"tags": {"team": "risk"}}
    assert {e["actor"] for e in entries} == {"wes", "ada"}


def test_openapi_lists_every_route_with_error_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/models/{name}/aliases/{alias}/rollback" in paths
    assert "/models/{name}/versions/upload" in paths
    assert "404" in paths["/models/{name}"]["get"]["responses"]
    assert "ErrorBody" in spec["components"]["schemas"]


def test_reference_profile_is_kept_apart_and_served_to_the_monitor(client: TestClient) -> None:
    from shared.profile import build_profile

    name = model_name()
    create_model(client, name)
    profile = build_profile({"age": [float(v) for v in range(100)], "plan": ["free", "pro"] * 50})
    version = upload_version(client, name, reference_profile=profile.model_dump(mode="json"))
    assert version["has_reference_profile"] is True and "reference_profile" not in version
    served = client.get(f"/models/{name}/versions/1/reference-profile")
    assert served.status_code == 200 and served.json()["rows"] == 100
    assert upload_version(client, name)["has_reference_profile"] is False
    none = client.get(f"/models/{name}/versions/2/reference-profile")
    assert none.status_code == 404 and none.json()["error"]["field"] == "reference_profile"


def test_feature_importance_is_served_most_important_first_with_shares(client: TestClient) -> None:
    from shared.profile import build_profile

    name = model_name()
    create_model(client, name)
    columns = {"age": [float(v) for v in range(100)], "plan": ["free", "pro"] * 50, "noise": [0.0] * 100}
    profile = build_profile(columns)
    measured = profile.model_copy(update={"feature_importance": {"plan": 0.25, "age": 0.75, "noise": -0.01}})
    upload_version(client, name, reference_profile=measured.model_dump(mode="json"))
    upload_version(client, name, reference_profile=profile.model_dump(mode="json"))
    served = client.get(f"/models/{name}/versions/1/feature-importance").json()
    assert list(served["importance"]) == ["age", "plan", "noise"]
    assert served["shares"] == {"age": 0.75, "plan": 0.25, "noise": 0.0}
    kept = client.get(f"/models/{name}/versions/1/reference-profile").json()["feature_importance"]
    assert kept == {"plan": 0.25, "age": 0.75, "noise": -0.01}
    stray = profile.model_dump(mode="json") | {"feature_importance": {"tenure": 0.5}}
    body = {"artifact_uri": "file:///x", "reference_profile": stray}
    refused = client.post(f"/models/{name}/versions", json=body, headers=WRITER)
    assert refused.status_code == 422 and "tenure" in refused.text
    unmeasured = client.get(f"/models/{name}/versions/2/feature-importance").json()
    assert unmeasured["importance"] == {} and unmeasured["shares"] == {}
    missing = client.get(f"/models/{name}/versions/3/feature-importance")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "version"


def test_a_profile_contradicting_the_schema_is_refused_with_422_naming_the_feature(
    client: TestClient,
) -> None:
    import json

    from shared.profile import build_profile

    name = model_name()
    create_model(client, name)  # age: integer
    profile = build_profile({"age": ["twenty", "thirty"]}).model_dump(mode="json")
    for response in (
        client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("model.joblib", io.BytesIO(b"m"), "application/octet-stream")},
            data={"metadata": json.dumps({"reference_profile": profile})},
            headers=WRITER,
        ),
        client.post(
            f"/models/{name}/versions",
            json={"artifact_uri": "file:///nowhere/model.joblib", "reference_profile": profile},
            headers=WRITER,
        ),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == "reference_profile.features.age" and "'age'" in error["message"]
    assert client.get(f"/models/{name}").json()["latest_version"] == 0


def test_metrics_count_every_request_by_status_class_for_the_scaling_advisor(client: TestClient) -> None:
    """``/metrics`` counts what the registry answered, the resolve fast path included, in the form the
    advisor reads (docs/advisor.md); scraping it is not counted."""
    from services.advisor.adapters.http_services import parse

    before = parse("registry", 0.0, client.get("/metrics").text)
    name = model_name()
    create_model(client, name)
    upload_version(client, name)
    assert client.put(f"/models/{name}/aliases/production", json={"version": 1}, headers=WRITER).is_success
    for _ in range(5):
        assert client.get(f"/models/{name}/aliases/production").status_code == 200
    assert client.get(f"/models/{name}-missing").status_code == 404
    after = parse("registry", 10.0, client.get("/metrics").text)
    assert before is not None and after is not None
    assert after.requests - before.requests == 9
    assert after.errors == before.errors
    assert after.buckets[-1][1] - before.buckets[-1][1] == 9
