"""A model logged and registered with MLflow closes the loop: ``driftloop up``, ``mlflow.sklearn.log_model(...,
registered_model_name=...)`` against the registry, the version onboarded with its training data
(``driftloop models register NAME model.zip --data --target --promote``), served, a shift in the data, drift,
a retrained version promoted by the trainer, and the MLflow client loading ``models:/NAME@production``: the
retrained version, still an MLflow model, answering like the model server does.

Same stream, shift and pace as ``test_own_model.py`` (breast-cancer data shipped with scikit-learn).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.e2e.test_own_model import (
    BEFORE,
    SEED,
    TARGET,
    THRESHOLDS,
    App,
    User,
    breast_cancer,
    make_user,
    stream,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(480)]


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path, f"mlflow-{uuid.uuid4().hex[:6]}")
    yield u
    u.driftloop("down", check=False)


def test_a_model_registered_through_mlflow_closes_the_loop_and_mlflow_loads_the_retrained_version(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import mlflow.sklearn

    rng = np.random.default_rng(SEED)
    frame = breast_cancer()
    features = [c for c in frame.columns if c != TARGET]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(frame[features], frame[TARGET])
    frame.to_csv(user.home / "train.csv", index=False)
    (user.home / "thresholds.json").write_text(json.dumps(THRESHOLDS))
    user.driftloop("up", "--model", user.model)

    url = user.env["DRIFTLOOP_REGISTRY_URL"]
    token = (user.settings.data_dir / "local-token").read_text().strip()
    for key, value in {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }.items():
        monkeypatch.setenv(key, value)
    # set_experiment exports the experiment to os.environ for subprocesses: removed again after the test
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(leaked, raising=False)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    mlflow.set_experiment(f"exp-{user.model}")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=user.model,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    assert str(info.registered_model_version) == "1"
    auth = {"Authorization": f"Bearer {token}"}
    (user.home / "model.zip").write_bytes(
        httpx.get(f"{url}/models/{user.model}/versions/1/artifact", headers=auth).content
    )
    out = user.driftloop(
        "models", "register", user.model, "model.zip", "--data", "train.csv", "--target", TARGET, "--promote"
    )
    assert f"{user.model}@production → version 2" in out, out
    user.driftloop("models", "set", user.model, "--thresholds", "thresholds.json")

    app = App(user)
    try:
        wait_for(
            lambda: httpx.get(f"{app.url}/healthz").status_code == 200, 60, "the model server to load v2"
        )
        app.send(stream(frame, BEFORE, shifted=False, rng=rng))
        shift = len(app.answers)

        def swapped() -> bool:
            return any(a["model_version"] > 2 for a in app.answers[shift:])

        deadline = time.monotonic() + 150
        while not swapped() and time.monotonic() < deadline:
            app.send(stream(frame, 200, shifted=True, rng=rng), until=swapped)
        assert swapped(), f"no retrained version served within 150 s of the shift\n{user.logs()}"
        app.sdk.flush(timeout=30)
    finally:
        app.close()

    production = json.loads(user.run("models", "show", user.model).stdout)["aliases"]["production"]
    assert production >= 3
    loaded = mlflow.pyfunc.load_model(f"models:/{user.model}@production")
    assert loaded.metadata.flavors.keys() >= {"sklearn", "python_function"}
    probe = stream(frame, 50, shifted=True, rng=rng)
    ours = loaded.predict(probe[features])
    served = [
        httpx.post(f"{app.url}/predict", json={"features": {k: float(v) for k, v in row.items()}}).json()
        for row in probe[features].to_dict("records")
    ]
    assert {s["model_version"] for s in served} == {production}
    assert [int(p) for p in ours] == [s["prediction"] for s in served]  # MLflow's load is the served model
