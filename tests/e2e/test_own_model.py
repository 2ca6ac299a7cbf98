"""A user's own model through the README's path, closed loop: ``driftloop up``, ``driftloop models register
... --data --target --promote``, predictions from the model server over HTTP, labels from the SDK, a shift in
the data, then drift detected, a retrained version promoted by the trainer and served without a restart,
no dead letters, and the same answer type before and after. Answers are read with ``driftloop sql``.

Everything runs as a user runs it: the ``driftloop`` command in subprocesses, a private data folder and
free ports, the real services as processes. Only the pace is the test's (short windows, like the demo's).
The model is scikit-learn's, trained on the breast-cancer data shipped with scikit-learn; its stream is
that data resampled with noise (seeded), and the shift multiplies the "worst ..." measurements by 1.4, as a
recalibrated instrument would. Run with ``-s`` to see the timeline (the README path's wall time).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shared.sdk import Driftloop, ProducerConfig
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import free_ports, random_topic_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]

TARGET = "diagnosis"
SHIFTED = 1.4  # the "worst ..." measurements after the shift, as a share of what they were
RATE = 40.0  # predictions per second the app asks for
BEFORE = 400  # predictions before the shift
AFTER_SWAP = 150  # predictions after the retrained version answered first
SEED = 7
# the demo's pace: a window every 5 s, judged on 40+ rows, 2 drifted windows of 3 for an alert
PACE = {
    "DRIFTLOOP_MONITOR_WINDOW_SECONDS": "5",
    "DRIFTLOOP_MONITOR_ALLOWED_LATENESS_SECONDS": "1",
    "DRIFTLOOP_MONITOR_LABEL_WAIT_SECONDS": "3",
    "DRIFTLOOP_MONITOR_BATCH_SECONDS": "0.5",
    "DRIFTLOOP_TRAINER_DEBOUNCE_SECONDS": "0.5",
    "DRIFTLOOP_REGISTRY_RELAY_INTERVAL": "0.1",
}
THRESHOLDS = {"min_window_size": 40, "windows_needed": 2, "windows_considered": 3, "numeric_effect": 0.3}


@dataclass
class Timeline:
    """When each step of the README path ended, in seconds since the test started ``driftloop up``."""

    started: float = field(default_factory=time.monotonic)
    steps: dict[str, float] = field(default_factory=dict)

    def mark(self, step: str) -> None:
        self.steps.setdefault(step, round(time.monotonic() - self.started, 1))

    def show(self) -> str:
        return "\n".join(f"{at:7.1f} s  {step}" for step, at in self.steps.items())


@dataclass
class User:
    """One user's machine: a data folder, free ports and the ``driftloop`` command with them."""

    home: Path
    model: str
    env: dict[str, str]
    settings: Settings

    def run(self, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "driftloop"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"driftloop {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def driftloop(self, *args: str, check: bool = True) -> str:
        done = self.run(*args, check=check)
        return done.stdout + done.stderr

    def sql(self, query: str) -> list[dict[str, Any]]:
        """Rows of ``driftloop sql --format json``, as the README queries ClickHouse."""
        return list(json.loads(self.run("sql", "--format", "json", query).stdout))

    def logs(self) -> str:
        logs = sorted((self.settings.data_dir / "logs").glob("*.log"))
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]) for p in logs
        )


def make_user(home: Path, model: str) -> User:
    ports = free_ports(11)
    kafka, controller, clickhouse, s3, registry, ingest, monitor, serving, trainer, advisor, console = ports
    values = {
        "DRIFTLOOP_DATA_DIR": str(home / ".driftloop"),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "DRIFTLOOP_KAFKA_CONTROLLER_PORT": str(controller),
        "DRIFTLOOP_KAFKA_HEAP": "256m",
        "DRIFTLOOP_CLICKHOUSE_URL": f"http://127.0.0.1:{clickhouse}",
        "DRIFTLOOP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3}",
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{registry}",
        "DRIFTLOOP_INGEST_PORT": str(ingest),
        "DRIFTLOOP_MONITOR_WEB_PORT": str(monitor),
        "DRIFTLOOP_TRAINER_WEB_PORT": str(trainer),
        "DRIFTLOOP_ADVISOR_WEB_PORT": str(advisor),
        "DRIFTLOOP_CONSOLE_PORT": str(console),
        "DRIFTLOOP_SERVING_PORT": str(serving),
        "DRIFTLOOP_TOPIC_PREFIX": random_topic_prefix(),
        **PACE,
    }
    settings = Settings(
        data_dir=Path(values["DRIFTLOOP_DATA_DIR"]),
        kafka_bootstrap=values["DRIFTLOOP_KAFKA_BOOTSTRAP"],
        topic_prefix=values["DRIFTLOOP_TOPIC_PREFIX"],
        serving_port=serving,
    )
    return User(home, model, {**os.environ, **values}, settings)


def breast_cancer() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    return data.frame.rename(columns={"target": TARGET})


def stream(frame: pd.DataFrame, rows: int, shifted: bool, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` rows drawn from ``frame`` with noise of 5% of each column's spread; shifted: recalibrated."""
    drawn = frame.sample(rows, replace=True, random_state=rng.integers(2**31)).reset_index(drop=True)
    features = [c for c in frame.columns if c != TARGET]
    noise = rng.normal(0.0, 0.05, (rows, len(features))) * frame[features].std().to_numpy()
    drawn[features] = (drawn[features] + noise).clip(lower=0.0)
    if shifted:
        worst = [c for c in features if c.startswith("worst ")]
        drawn[worst] = drawn[worst] * SHIFTED
    return drawn


class App:
    """The user's app: asks the model server for each row over HTTP, reports the truth with the SDK."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.url = f"http://127.0.0.1:{user.settings.serving_port}"
        self.http = httpx.Client(timeout=30)
        self.sdk = Driftloop(ProducerConfig.from_settings(user.settings, app_name="cancer-app"))
        self.answers: list[dict[str, Any]] = []
        self.refused: list[str] = []

    def close(self) -> None:
        self.sdk.close()
        self.http.close()

    def ask(self, row: dict[str, Any]) -> dict[str, Any] | None:
        features = {k: float(v) for k, v in row.items() if k != TARGET}
        response = self.http.post(f"{self.url}/predict", json={"features": features})
        if response.status_code != 200:
            self.refused.append(f"{response.status_code} {response.text[:300]}")
            return None
        answer = dict(response.json())
        self.sdk.log_label(self.user.model, answer["prediction_id"], label=int(row[TARGET]))
        answer["truth"] = int(row[TARGET])
        answer["at"] = time.monotonic()
        self.answers.append(answer)
        return answer

    def send(self, rows: pd.DataFrame, until: Callable[[], bool] = lambda: False) -> None:
        """Ask for ``rows`` at :data:`RATE` per second (four at a time), or until ``until()`` holds."""
        records = rows.to_dict("records")
        with ThreadPoolExecutor(4) as pool:
            start = time.monotonic()
            for i in range(0, len(records), 4):
                list(pool.map(self.ask, records[i : i + 4]))
                assert not self.refused, self.refused[:3]
                if until():
                    return
                time.sleep(max(0.0, start + (i + 4) / RATE - time.monotonic()))


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def dead_letter_records(user: User) -> list[bytes]:
    """Every record on the dead-letter topic, from the beginning."""
    topic = topic_names(user.settings.topic_prefix).dead_letter

    async def consume() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=user.settings.kafka_bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        found: list[bytes] = []
        try:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 2.0:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    quiet_since = time.monotonic()
                    found += [r.value or b"" for r in records]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path, f"cancer-{uuid.uuid4().hex[:6]}")
    yield u
    u.driftloop("down", check=False)


def test_a_users_own_model_closes_the_loop(user: User) -> None:
    rng = np.random.default_rng(SEED)
    frame = breast_cancer()
    features = [c for c in frame.columns if c != TARGET]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(frame[features], frame[TARGET])
    joblib.dump(model, user.home / "model.joblib")
    frame.to_csv(user.home / "train.csv", index=False)
    (user.home / "thresholds.json").write_text(json.dumps(THRESHOLDS))

    t = Timeline()
    user.driftloop("up", "--model", user.model)
    t.mark("driftloop up: every service healthy")
    out = user.driftloop(
        "models",
        "register",
        user.model,
        "model.joblib",
        "--data",
        "train.csv",
        "--target",
        TARGET,
        "--promote",
    )
    assert f"{user.model}@production → version 1" in out, out
    assert "WARNING" not in out, out
    t.mark("models register --data --target --promote")
    user.driftloop("models", "set", user.model, "--thresholds", "thresholds.json")
    t.mark("models set --thresholds")

    app = App(user)
    try:
        wait_for(
            lambda: httpx.get(f"{app.url}/healthz").status_code == 200, 60, "the model server to load v1"
        )
        app.send(stream(frame, BEFORE, shifted=False, rng=rng)[:1])
        t.mark("first prediction served")
        # an input the schema refuses is a 422 naming the feature, never an answer that is dead-lettered
        refused = httpx.post(f"{app.url}/predict", json={"features": {"mean_radius": 14.0}})
        assert refused.status_code == 422 and "mean_radius" in refused.text, refused.text
        app.send(stream(frame, BEFORE, shifted=False, rng=rng))
        t.mark(f"{BEFORE} predictions and labels before the shift")
        shift, shifted_at = len(app.answers), datetime.now(UTC)
        t.mark("shift")

        def swapped() -> bool:
            return any(a["model_version"] > 1 for a in app.answers[shift:])

        deadline = time.monotonic() + 150
        while not swapped() and time.monotonic() < deadline:
            app.send(stream(frame, 200, shifted=True, rng=rng), until=swapped)
        assert swapped(), f"no retrained version served within 150 s of the shift\n{t.show()}\n{user.logs()}"
        t.mark("retrained version served (first answer)")
        first_new = next(i for i, a in enumerate(app.answers) if a["model_version"] > 1)
        app.send(stream(frame, AFTER_SWAP, shifted=True, rng=rng))
        app.sdk.flush(timeout=30)
    finally:
        app.close()

    name = user.model
    drift = user.sql(
        f"SELECT model_version, drifted_features, window_end FROM drift_events FINAL WHERE model_name = '{name}' "
        "AND event_type = 'drift_detected' ORDER BY window_end"
    )
    runs = user.sql(
        f"SELECT status, promoted, model_version, finished_at FROM training_runs FINAL WHERE model_name = '{name}'"
    )
    print(f"\n{t.show()}\ndrift events: {drift}\ntraining runs: {runs}")

    # drift detected on version 1, on the measurements that moved, and no alarm before they moved
    assert drift and drift[0]["model_version"] == "1", drift
    assert all(datetime.fromisoformat(d["window_end"]).replace(tzinfo=UTC) > shifted_at for d in drift)
    assert any(f.startswith("worst ") for d in drift for f in d["drifted_features"]), drift
    # the trainer registered and promoted a retrained version, and the registry says it is production
    assert any(r["status"] == "finished" and r["promoted"] for r in runs), runs
    shown = json.loads(user.run("models", "show", name).stdout)
    assert shown["aliases"]["production"] >= 2, shown
    history = user.driftloop("models", "history", name)
    assert "1 → 2     by trainer" in history, history  # the trainer's promotion, not the user's
    # served without a restart: the same server answered v1, then the new version
    versions = [a["model_version"] for a in app.answers]
    assert versions[:first_new] == [1] * first_new and versions[-1] >= 2
    status = httpx.get(f"{app.url}/status").json()
    assert status["swaps"] >= 1, status
    # the same answer type before and after the retraining: the int the user's model answers
    assert {type(a["prediction"]) for a in app.answers} == {int}, {repr(a["prediction"]) for a in app.answers}
    # the retrained model repaired what the shift broke
    after = app.answers[first_new:]
    assert sum(a["prediction"] == a["truth"] for a in after) / len(after) > 0.85

    # every answer and label reached ClickHouse; nothing was dead-lettered
    wait_for(
        lambda: (
            user.sql(f"SELECT count() AS n FROM labels FINAL WHERE model_name = '{name}'")[0]["n"]
            == len(app.answers)
        ),
        30,
        "every label in ClickHouse",
    )
    stored = user.sql(f"SELECT count() AS n FROM predictions FINAL WHERE model_name = '{name}'")
    assert stored[0]["n"] == len(app.answers)
    assert user.sql("SELECT count() AS n FROM dead_letters")[0]["n"] == 0
    assert dead_letter_records(user) == []
