"""A default `driftloop up` can write to its own registry: the local admin token, with nothing configured."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from driftloop.infra.services import ensure_local_token
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from services.trainer.adapters.registry_client import RegistryClient
from shared.settings import Settings
from tests.integration.test_system_cli import System

pytestmark = pytest.mark.integration


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path / "system")
    yield s
    s.run("down")


def driftloop(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "driftloop"), *args],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_models_register_and_promote_work_after_a_default_up_without_any_token(
    system: System, tmp_path: Path
) -> None:
    assert not any(name.startswith("DRIFTLOOP_REGISTRY_TOKEN") for name in system.env)
    up = system.run("up")
    assert up.returncode == 0, up.stderr + up.stdout

    token_file = system.data_dir / "local-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32

    model = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]), model)
    registered = driftloop(system, "models", "register", "churn", str(model), "--create")
    assert registered.returncode == 0, registered.stderr
    assert "registered churn version 1" in registered.stdout
    promoted = driftloop(system, "models", "promote", "churn", "1")
    assert promoted.returncode == 0, promoted.stderr
    history = driftloop(system, "models", "history", "churn")
    assert "by local" in history.stdout, history.stdout  # the local admin, not "anonymous"

    second = system.run("up")  # an existing token is kept: clients holding it keep working
    assert second.returncode == 0 and token_file.read_text().strip() == token
    printed = up.stdout + up.stderr + registered.stdout + registered.stderr + second.stdout
    logs = "".join(p.read_text(errors="replace") for p in (system.data_dir / "logs").glob("*.log"))
    assert token not in printed and token not in logs, "the token is never printed or logged"


def test_the_trainer_promotes_as_itself_not_as_the_local_user(tmp_path: Path) -> None:
    ensure_local_token(Settings(data_dir=tmp_path))
    settings = Settings(data_dir=tmp_path, registry_relay_enabled=False)  # built again, as `up` does
    with TestClient(create_app(bootstrap(settings))) as user:
        user.headers["Authorization"] = f"Bearer {settings.registry_token.get_secret_value()}"
        assert user.post("/models", json={"name": "churn"}).status_code == 201
        upload = {"artifact": ("model.joblib", b"v1", "application/octet-stream")}
        assert user.post("/models/churn/versions/upload", files=upload, data={"metadata": "{}"}).is_success
        assert user.put("/models/churn/aliases/production", json={"version": 1}).is_success

        trainer = RegistryClient.from_settings(settings)
        user_headers = dict(user.headers)
        user.headers.update(trainer._http.headers)  # the trainer's own headers on the in-process app
        trainer._http = user
        version = trainer.register_version("churn", b"v2", "model.joblib", {})
        trainer.set_alias("churn", "production", version, "gate passed")
        assert user.delete("/models/churn", params={"force": True}).status_code == 403, "a writer only"

        user.headers.update(user_headers)
        audit = user.get("/audit", params={"model": "churn"}).json()["items"]
        actors = [(e["action"], e["actor"]) for e in reversed(audit)]
        assert actors == [
            ("model.create", "local"),
            ("version.register", "local"),
            ("alias.set", "local"),
            ("version.register", "trainer"),
            ("alias.moved", "trainer"),
        ], actors
        history = user.get("/models/churn/aliases/production/history").json()
        assert [h["changed_by"] for h in history] == ["local", "trainer"], history
