"""The real MLflow client (pinned mlflow-skinny) against a running Driftloop registry on real S3 and Kafka:
log and register a scikit-learn model, alias, tag search, ``models:/NAME@ALIAS`` load and predict, delete;
every write audited and announced on model-events; bad calls answered in MLflow's error format."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shared.events import (
    AliasChanged,
    ModelCreated,
    ModelDeleted,
    ModelVersionDeleted,
    ModelVersionRegistered,
)
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.s3 import S3Server
from tests.integration.mlflow_helpers import point_mlflow_at, served_registry
from tests.integration.test_registry_events import read_model_events

pytestmark = pytest.mark.integration

TOKENS = {"w-token": "wes:writer", "a-token": "ada:admin", "r-token": "rae:reader"}


@pytest.fixture
def settings(
    kafka: KafkaBroker, topic_prefix: str, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> Settings:
    create_topics(kafka.bootstrap, [topic_names(topic_prefix).model_events], 1, 1)
    return s3_server.settings(
        data_dir=tmp_path,
        artifact_root=f"s3://{s3_bucket}/registry",
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        registry_tokens=TOKENS,
        registry_relay_interval=0.1,
    )


def _classifier(seed: int) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + (0.5 if seed else -0.5) * x[:, 1] > 0).astype(int)
    return LogisticRegression().fit(x, y), x


def test_mlflow_client_logs_registers_aliases_searches_loads_and_deletes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = f"churn-{uuid4().hex[:8]}"
    first, x = _classifier(0)
    second, _ = _classifier(1)
    with served_registry(settings) as url:
        point_mlflow_at(monkeypatch, url, "w-token")
        client = MlflowClient()
        mlflow.set_experiment(f"exp-{name}")
        with mlflow.start_run() as run:
            mlflow.log_param("C", 1.0)
            mlflow.log_metric("auc", 0.91)
            info = mlflow.sklearn.log_model(
                first,
                name="model",
                registered_model_name=name,
                serialization_format="pickle",
                pip_requirements=["scikit-learn"],
            )
        assert str(info.registered_model_version) == "1"
        with mlflow.start_run():
            v2 = mlflow.sklearn.log_model(
                second,
                name="model",
                registered_model_name=name,
                serialization_format="pickle",
                pip_requirements=["scikit-learn"],
            )
        assert str(v2.registered_model_version) == "2"

        client.set_registered_model_alias(name, "production", "1")
        assert client.get_model_version_by_alias(name, "production").version == "1"
        client.set_model_version_tag(name, "1", "team", "risk")
        client.set_registered_model_tag(name, "owner", "risk-team")
        found = client.search_model_versions(f"name = '{name}' AND tags.team = 'risk'")
        assert [v.version for v in found] == ["1"]
        assert found[0].run_id == run.info.run_id and found[0].current_stage == "Production"
        by_run = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        assert [(v.name, v.version) for v in by_run] == [(name, "1")]
        assert [
            m.name for m in client.search_registered_models(f"tags.owner = 'risk-team' AND name = '{name}'")
        ] == [name]

        loaded = mlflow.pyfunc.load_model(f"models:/{name}@production")
        np.testing.assert_array_equal(loaded.predict(x[:20]), first.predict(x[:20]))
        client.transition_model_version_stage(name, "2", "Production")  # the stage is the alias
        assert client.get_model_version_by_alias(name, "production").version == "2"
        reloaded = mlflow.sklearn.load_model(f"models:/{name}@production")
        np.testing.assert_array_equal(reloaded.predict(x[:20]), second.predict(x[:20]))

        # bad or unsupported calls: MLflow's error codes, never a crash
        with pytest.raises(MlflowException) as missing:
            client.get_registered_model(f"{name}-nope")
        assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        with pytest.raises(MlflowException) as rename:
            client.rename_registered_model(name, f"{name}-new")
        assert rename.value.error_code == "INVALID_PARAMETER_VALUE"
        with pytest.raises(MlflowException) as bad_filter:
            client.search_model_versions("name LIKE '%churn'")
        assert bad_filter.value.error_code == "INVALID_PARAMETER_VALUE"
        with pytest.raises(MlflowException) as not_deleter:
            client.delete_model_version(name, "1")  # a writer: deletes need the admin role, like native ones
        assert not_deleter.value.error_code == "PERMISSION_DENIED"
        reader = {"Authorization": "Bearer r-token"}
        refused = httpx.post(
            f"{url}/api/2.0/mlflow/registered-models/create", json={"name": f"{name}-r"}, headers=reader
        )
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
        unknown = httpx.get(f"{url}/api/2.0/mlflow/gateway/endpoints/list", headers=reader)
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        writer = {"Authorization": "Bearer w-token"}
        for path in ("0/..%2F..%2Fetc/passwd", "0/a/../../../x", "driftloop-versions/x/1/MLmodel"):
            escaped = httpx.put(
                f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}", content=b"x", headers=writer
            )
            assert escaped.status_code in (400, 404), (path, escaped.text)
            assert escaped.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "ENDPOINT_NOT_FOUND")

        point_mlflow_at(monkeypatch, url, "a-token")
        client.delete_model_version(name, "1")
        with pytest.raises(MlflowException):
            client.get_model_version(name, "1")
        client.delete_registered_model(name)

        audit = httpx.get(f"{url}/audit", params={"model": name, "limit": 100}, headers=writer).json()[
            "items"
        ]
        actions = sorted(e["action"] for e in audit)
        assert actions == sorted(
            [
                "model.create",
                "version.register",
                "version.register",
                "alias.set",
                "version.update",  # the team tag
                "model.update",  # the owner tag
                "alias.moved",
                "version.delete",
                "model.delete",
            ]
        ), actions
        assert {e["actor"] for e in audit} == {"wes", "ada"}

    events = read_model_events(
        settings.kafka_bootstrap,
        topic_names(settings.topic_prefix).model_events,
        lambda seen: any(isinstance(e, ModelDeleted) and e.model_name == name for _, e in seen),
    )
    mine = [e for key, e in events if key == name.encode()]
    kinds = [type(e) for e in mine]
    assert kinds[0] is ModelCreated and kinds[-1] is ModelDeleted
    assert kinds.count(ModelVersionRegistered) == 2 and ModelVersionDeleted in kinds
    assert [(e.action.value, e.version) for e in mine if isinstance(e, AliasChanged)] == [
        ("set", 1),
        ("moved", 2),
    ]


def test_a_model_registered_through_mlflow_is_served_and_its_retrained_version_loads_in_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model server loads the MLflow-format version; the trainer's repackaged retrained version (what
    ``services/trainer`` registers for an MLflow champion) is what ``models:/NAME@production`` loads next."""
    import mlflow
    import mlflow.sklearn

    from services.serving.adapters.artifacts import load_model
    from shared.mlflow_model import repackage

    settings = Settings(data_dir=tmp_path, registry_tokens=TOKENS, registry_relay_enabled=False)
    name = f"churn-{uuid4().hex[:8]}"
    first, x = _classifier(0)
    retrained, _ = _classifier(1)
    writer = {"Authorization": "Bearer w-token"}
    with served_registry(settings) as url:
        point_mlflow_at(monkeypatch, url, "w-token")
        mlflow.set_experiment(f"exp-{name}")  # not the previous test's: that registry is gone
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                first,
                name="model",
                registered_model_name=name,
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn"],
            )
        version = httpx.get(f"{url}/models/{name}/versions/1", headers=writer).json()
        served = load_model(settings, name, 1, version["artifact_uri"], version["artifact_sha256"])
        np.testing.assert_array_equal(served.estimator.predict(x[:20]), first.predict(x[:20]))

        champion = httpx.get(f"{url}/models/{name}/versions/1/artifact", headers=writer).content
        uploaded = httpx.post(
            f"{url}/models/{name}/versions/upload",
            files={"artifact": ("model.zip", repackage(champion, retrained))},
            headers=writer,
        )
        assert uploaded.status_code == 201, uploaded.text
        httpx.put(f"{url}/models/{name}/aliases/production", json={"version": 2}, headers=writer)
        loaded = mlflow.pyfunc.load_model(f"models:/{name}@production")
        np.testing.assert_array_equal(loaded.predict(x[:20]), retrained.predict(x[:20]))
        assert not np.array_equal(first.predict(x), retrained.predict(x))  # the two differ: the load is real


def test_mlflow_calls_beyond_the_client_flow_answer_as_mlflow_would(tmp_path: Path) -> None:
    """Stages as aliases, latest versions, version-number filters, artifact listing and hash checks, and the
    error answers a raw MLflow REST caller gets (TestClient: no client library involved)."""
    from fastapi.testclient import TestClient

    from services.registry.bootstrap import bootstrap
    from services.registry.entrypoints.http import create_app

    settings = Settings(data_dir=tmp_path, registry_tokens=TOKENS, registry_relay_enabled=False)
    w = {"Authorization": "Bearer w-token"}
    api = "/api/2.0/mlflow"
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        run = client.post(f"{api}/runs/create", json={"experiment_id": "0"}, headers=w).json()["run"]["info"]
        root = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
        for member, data in (("model/MLmodel", b"flavors: {}\n"), ("model/sub/weights.bin", b"\x00\x01")):
            put = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{root}/{member}", content=data, headers=w)
            assert put.status_code == 200, put.text
        listed = client.get(
            "/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{root}/model"}, headers=w
        )
        assert listed.json()["files"] == [
            {"path": "MLmodel", "is_dir": False, "file_size": 12},
            {"path": "sub", "is_dir": True},
        ]
        assert (
            client.post(f"{api}/registered-models/create", json={"name": name}, headers=w).status_code == 200
        )
        again = client.post(f"{api}/registered-models/create", json={"name": name}, headers=w)
        assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        for _ in range(2):
            created = client.post(
                f"{api}/model-versions/create",
                json={"name": name, "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]},
                headers=w,
            )
            assert created.status_code == 200, created.text
        served = client.get(
            f"/api/2.0/mlflow-artifacts/artifacts/driftloop-versions/{name}/2/sub/weights.bin", headers=w
        )
        assert served.content == b"\x00\x01"

        def stage_of(version: str) -> str:
            got = client.get(
                f"{api}/model-versions/get", params={"name": name, "version": version}, headers=w
            )
            return str(got.json()["model_version"]["current_stage"])

        move = {"name": name, "version": "1", "stage": "Staging"}
        assert client.post(f"{api}/model-versions/transition-stage", json=move, headers=w).status_code == 200
        assert stage_of("1") == "Staging"
        move = {"name": name, "version": "1", "stage": "Archived"}
        client.post(f"{api}/model-versions/transition-stage", json=move, headers=w)
        assert stage_of("1") == "None" and client.get(f"/models/{name}", headers=w).json()["aliases"] == {}
        bad_stage = client.post(
            f"{api}/model-versions/transition-stage", json={**move, "stage": "Live"}, headers=w
        )
        assert bad_stage.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        latest = client.post(f"{api}/registered-models/get-latest-versions", json={"name": name}, headers=w)
        assert [v["version"] for v in latest.json()["model_versions"]] == ["2"]
        one = client.get(
            f"{api}/model-versions/search",
            params={"filter": f"name = '{name}' AND version_number = 1"},
            headers=w,
        )
        assert [v["version"] for v in one.json()["model_versions"]] == ["1"]

        # cached reads (answered before the framework) see every change, tag-only ones included
        def tagged(value: str) -> list[str]:
            query = {"filter": f"name = '{name}' AND tags.team = '{value}'"}
            found = client.get(f"{api}/model-versions/search", params=query, headers=w).json()[
                "model_versions"
            ]
            native = client.get(f"/models/{name}/versions", params={"tag": f"team={value}"}, headers=w).json()
            assert [v["version"] for v in native["items"]] == [int(v["version"]) for v in found]
            return [v["version"] for v in found]

        assert tagged("risk") == [] and client.get(f"/models/{name}/versions/1", headers=w).json()[
            "tags"
        ] == {
            "mlflow.run_id": run["run_id"],
            "mlflow.source": f"runs:/{run['run_id']}/model",
        }
        tag = {"name": name, "version": "1", "key": "team", "value": "risk"}
        assert client.post(f"{api}/model-versions/set-tag", json=tag, headers=w).status_code == 200
        assert (
            tagged("risk") == ["1"]
            and client.get(f"/models/{name}/versions/1", headers=w).json()["tags"]["team"] == "risk"
        )
        client.request("DELETE", f"{api}/model-versions/delete-tag", json=tag, headers=w)
        assert tagged("risk") == []
        described = {"name": name, "version": "2", "description": "retrained"}
        client.get(f"{api}/model-versions/get", params={"name": name, "version": "2"}, headers=w)
        client.patch(f"{api}/model-versions/update", json=described, headers=w)
        again = client.get(f"{api}/model-versions/get", params={"name": name, "version": "2"}, headers=w)
        assert again.json()["model_version"]["description"] == "retrained"

        for path in ("../etc/passwd", "a/%2e%2e/b"):
            escaped = client.get(f"/api/2.0/mlflow-artifacts/artifacts/{path}", headers=w)
            assert escaped.status_code in (400, 404) and "error_code" in escaped.json()
        garbage = client.post(f"{api}/registered-models/create", content=b"[1, 2", headers=w)
        assert garbage.status_code == 400 and garbage.json()["error_code"] == "MALFORMED_REQUEST"
        missing = client.get(f"{api}/experiments/get-by-name", params={"experiment_name": "nope"}, headers=w)
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        no_name = client.get(f"{api}/registered-models/get", headers=w)
        assert no_name.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "Missing value for required parameter 'name'.",
        }
        anonymous = client.post(f"{api}/registered-models/create", json={"name": f"{name}-x"})
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
        wrong_method = client.put(f"{api}/registered-models/get", headers=w)
        assert wrong_method.status_code == 404 and wrong_method.json()["error_code"] == "ENDPOINT_NOT_FOUND"
