"""Benchmark: promotion-to-swap latency of a model server, at each registry relay interval asked for.

Starts the local broker (unless one runs), one registry on a temporary SQLite database and one model server
(``--no-publish``) answering ``POST /predict`` back to back. For each relay interval it restarts the
registry with ``DRIFTLOOP_REGISTRY_RELAY_INTERVAL`` set, then moves the ``production`` alias between two
versions ``promotions`` times and times each from the moment ``PUT .../aliases/production`` returned to
the first prediction answered by the new version. Each move is made a random time after the previous swap,
spread over a whole relay interval, so moves land at every point of the relay's cycle (a fixed pause would
lock onto it). Prints median and p99 per interval and ends with one JSON line.
"""

from __future__ import annotations

import io
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from driftloop.bench.cleanup import clean_up
from shared.settings import Settings

MODEL = "bench-swap"
TOKEN = "bench-writer"
FEATURE = {"features": [{"name": "x", "type": "numeric", "nullable": False}]}


def _model_bytes(constant: int) -> bytes:
    """A scikit-learn classifier that always answers ``constant``, pickled with joblib."""
    import joblib
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    estimator = DummyClassifier(strategy="constant", constant=constant)
    estimator.fit(pd.DataFrame({"x": np.linspace(0, 1, 20)}), [0, 1] * 10)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def _wait(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f}s")


def _swap_latencies(registry: str, server: str, promotions: int, interval: float) -> list[float]:
    import httpx

    latencies = []
    spread = interval * max(1, round(0.5 / interval))  # a whole number of relay cycles, at least 0.5 s
    with (
        httpx.Client(base_url=registry, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as admin,
        httpx.Client(base_url=server, timeout=10) as client,
    ):
        current = client.get("/status").json()["version"]
        for _ in range(promotions):
            target = 2 if current == 1 else 1
            admin.put(f"/models/{MODEL}/aliases/production", json={"version": target}).raise_for_status()
            moved = time.perf_counter()
            while client.post("/predict", json={"features": {"x": 0.5}}).json()["model_version"] != target:
                if time.perf_counter() - moved > 60:
                    raise RuntimeError(f"no swap to version {target} within 60 s")
            latencies.append(time.perf_counter() - moved)
            current = target
            time.sleep(0.3 + random.uniform(0, spread))
    return latencies


def main(promotions: int = 200, intervals: Sequence[float] = (0.5, 0.1)) -> dict[str, dict[str, float]]:
    import httpx

    from driftloop.infra.stack import Component, local_stack
    from driftloop.process import free_port, spawn
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    figures: dict[str, dict[str, float]] = {}
    with (
        local_stack(base, components=[Component.KAFKA]),
        tempfile.TemporaryDirectory() as tmp,
    ):
        registry_port, server_port = free_port(), free_port()
        while server_port == registry_port:
            server_port = free_port()
        settings = base.model_copy(
            update={
                "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-",
                "data_dir": Path(tmp),
                "artifact_root": "",
                "registry_database_url": "",
                "registry_url": f"http://127.0.0.1:{registry_port}",
                "registry_tokens": {TOKEN: "bench:writer"},
                "log_level": "WARNING",
            }
        )
        registry, server = settings.registry_url, f"http://127.0.0.1:{server_port}"
        create_topics(settings.kafka_bootstrap, [topic_names(settings.topic_prefix).model_events], 3, 1)
        serving = None
        try:
            for n, interval in enumerate(intervals):
                env = settings.model_copy(update={"registry_relay_interval": interval}).as_env()
                registry_process = spawn(
                    "registry",
                    [sys.executable, "-m", "services.registry"],
                    Path(tmp) / "registry.log",
                    env=env,
                )
                try:
                    _wait(lambda: httpx.get(f"{registry}/healthz").status_code == 200, "the registry")
                    if n == 0:
                        headers = {"Authorization": f"Bearer {TOKEN}"}
                        httpx.post(
                            f"{registry}/models",
                            json={"name": MODEL, "feature_schema": FEATURE},
                            headers=headers,
                        ).raise_for_status()
                        for constant in (0, 1):
                            httpx.post(
                                f"{registry}/models/{MODEL}/versions/upload",
                                files={"artifact": ("model.joblib", _model_bytes(constant))},
                                headers=headers,
                            ).raise_for_status()
                        httpx.put(
                            f"{registry}/models/{MODEL}/aliases/production",
                            json={"version": 1},
                            headers=headers,
                        ).raise_for_status()
                        argv = [sys.executable, "-m", "services.serving", "--model", MODEL]
                        argv += ["--port", str(server_port), "--no-publish"]
                        serving = spawn("serving", argv, Path(tmp) / "serving.log", env=settings.as_env())
                        _wait(lambda: httpx.get(f"{server}/healthz").status_code == 200, "the model server")
                        _wait(
                            lambda: httpx.get(f"{server}/status").json()["watcher"]["connected"] is True,
                            "the model server to follow model-events",
                        )
                    seconds = np.array(_swap_latencies(registry, server, promotions, interval))
                finally:
                    registry_process.stop()
                row = {
                    "median_s": round(float(np.median(seconds)), 3),
                    "p99_s": round(float(np.quantile(seconds, 0.99)), 3),
                    "max_s": round(float(seconds.max()), 3),
                    "promotions": promotions,
                }
                figures[f"relay_{interval:g}s"] = row
                print(
                    f"relay interval {interval:g} s: swap median {row['median_s']:.3f} s, "
                    f"p99 {row['p99_s']:.3f} s, max {row['max_s']:.3f} s over {promotions} promotions",
                    flush=True,
                )
        finally:
            if serving is not None:
                serving.stop()
            clean_up(settings, database=False)
    print(json.dumps(figures))
    return figures
