"""The requests the registry answers before the framework (registration, get-version, a first search) give
exactly what the app gives: the same bodies, the same errors, the same audit entries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.integration.test_registry_api import (
    ADMIN,
    READER,
    WRITER,
    create_model,
    model_name,
    registry_settings,
    upload_version,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bootstrap(registry_settings(tmp_path)))) as c:
        yield c


def test_a_registration_by_uri_answers_as_the_route_and_every_refusal_names_its_cause(
    client: TestClient, tmp_path: Path
) -> None:
    name = model_name()
    create_model(client, name)
    uri = upload_version(client, name, b"model")["artifact_uri"]
    body = {"artifact_uri": uri, "metrics": {"auc": 0.8}, "tags": {"team": "t1"}}

    made = client.post(f"/models/{name}/versions", json=body, headers=WRITER)
    assert made.status_code == 201, made.text
    assert made.json() == client.get(f"/models/{name}/versions/2").json()
    assert made.json()["tags"] == {"team": "t1"} and made.json()["created_by"] == "wes"
    audit = client.get("/audit", params={"model": name}, headers=ADMIN).json()["items"]
    assert [e["action"] for e in audit].count("version.register") == 2

    reader = client.post(f"/models/{name}/versions", json=body, headers=READER)
    assert reader.status_code == 403 and reader.json()["error"]["field"] == "authorization"
    anonymous = client.post(f"/models/{name}/versions", json=body)
    assert anonymous.status_code == 401
    unknown = client.post(f"/models/{model_name()}/versions", json=body, headers=WRITER)
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "name"
    outside = client.post(
        f"/models/{name}/versions", json={**body, "artifact_uri": (tmp_path / "x").as_uri()}, headers=WRITER
    )
    assert outside.status_code == 422 and outside.json()["error"]["field"] == "artifact_uri"
    not_json = client.post(f"/models/{name}/versions", content=b"{", headers=WRITER)
    assert not_json.status_code == 422
    bad_metric = client.post(f"/models/{name}/versions", json={**body, "metrics": "high"}, headers=WRITER)
    assert bad_metric.status_code == 422 and "metrics" in bad_metric.json()["error"]["field"]
    # nothing refused was numbered: the next version is 3
    assert client.post(f"/models/{name}/versions", json=body, headers=WRITER).json()["version"] == 3


def test_mlflow_create_answers_in_mlflows_shape_also_when_refused(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    uri = upload_version(client, name, b"model")["artifact_uri"]
    create = "/api/2.0/mlflow/model-versions/create"

    made = client.post(create, json={"name": name, "source": uri}, headers=WRITER)
    assert made.status_code == 200, made.text
    assert made.json()["model_version"]["version"] == "2" and made.json()["model_version"]["source"] == uri
    unknown = client.post(create, json={"name": model_name(), "source": uri}, headers=WRITER)
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    missing = client.post(create, json={"name": name}, headers=WRITER)
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    reader = client.post(create, json={"name": name, "source": uri}, headers=READER)
    assert reader.status_code == 403 and reader.json()["error_code"] == "PERMISSION_DENIED"


def test_a_first_search_and_its_refusals_answer_as_the_route(client: TestClient) -> None:
    name = model_name()
    create_model(client, name)
    for team in ("a", "b", "a"):
        upload_version(client, name, b"m", tags={"team": team})

    page = client.get("/versions", params={"name_prefix": name, "tag": "team=a", "limit": 1}).json()
    assert [v["version"] for v in page["items"]] == [3] and page["next_page_token"]
    rest = client.get(
        f"/models/{name}/versions", params={"tag": "team=a", "page_token": page["next_page_token"]}
    ).json()
    assert [v["version"] for v in rest["items"]] == [1] and rest["next_page_token"] is None

    too_many = client.get("/versions", params={"limit": 1001})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "query.limit"
    bad_status = client.get("/versions", params={"status": "gone"})
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"] == "query.status"
    bad_token = client.get("/versions", params={"page_token": "nonsense"})
    assert bad_token.status_code == 422 and bad_token.json()["error"]["field"] == "page_token"
    unknown = client.get(f"/models/{model_name()}/versions", params={"tag": "team=a"})
    assert unknown.status_code == 404


def test_mlflows_first_search_answers_as_its_route_and_refusals_keep_mlflows_shape(
    client: TestClient,
) -> None:
    name = model_name()
    create_model(client, name)
    for team in ("a", "b", "a"):
        upload_version(client, name, b"m", tags={"team": team})
    search = "/api/2.0/mlflow/model-versions/search"
    query = {"filter": f"name = '{name}' AND tags.team = 'a'", "max_results": 1}

    first = client.get(search, params=query)  # answered before the framework (nothing cached yet)
    assert first.status_code == 200, first.text
    assert first.json() == client.post(search, json=query).json()  # a POST always goes to the route
    found = first.json()["model_versions"]
    assert [v["version"] for v in found] == ["3"] and {"key": "team", "value": "a"} in found[0]["tags"]
    rest = client.get(search, params={**query, "page_token": first.json()["next_page_token"]}).json()
    assert [v["version"] for v in rest["model_versions"]] == ["1"] and "next_page_token" not in rest
    one = client.get(search, params={"filter": f"name = '{name}' AND version_number = 2"}).json()
    assert [v["version"] for v in one["model_versions"]] == ["2"]
    assert client.get(search, params={"filter": f"name = '{model_name()}'"}).json() == {"model_versions": []}

    for refused in ({"filter": "status = 'READY'"}, {"max_results": "x"}, {"order_by": "version"}):
        answer = client.get(search, params=refused)
        assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    repeated = client.get(f"{search}?filter=name%20%3D%20%27{name}%27&filter=name%20%3D%20%27x%27")
    assert repeated.status_code == 400 and repeated.json()["error_code"] == "INVALID_PARAMETER_VALUE"
