"""The timing decorator: returns the model's result unchanged and logs features, output and latency."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from shared.sdk.timing import timed_decorator


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def log_prediction(
        self,
        model_name: str,
        model_version: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        probabilities: Mapping[Any, float] | None = None,
        latency_ms: float | None = None,
    ) -> str:
        if self.fail:
            raise RuntimeError("producer closed")
        self.calls.append(
            dict(features=features, prediction=prediction, probabilities=probabilities, latency_ms=latency_ms)
        )
        return "pid"


def test_sync_and_async_model_calls_are_logged() -> None:
    recorder = Recorder()

    @timed_decorator(recorder, "churn", "1")
    def predict(features: dict[str, int]) -> int:
        return features["x"] * 2

    @timed_decorator(recorder, "churn", "1", output=lambda r: (r["label"], r["p"]))
    async def predict_async(features: dict[str, int]) -> dict[str, Any]:
        return {"label": 1, "p": {"1": 0.9}}

    assert predict({"x": 2}) == 4
    assert asyncio.run(predict_async({"x": 3})) == {"label": 1, "p": {"1": 0.9}}
    assert [(c["features"], c["prediction"], c["probabilities"]) for c in recorder.calls] == [
        ({"x": 2}, 4, None),
        ({"x": 3}, 1, {"1": 0.9}),
    ]
    assert all(c["latency_ms"] >= 0 for c in recorder.calls)


def test_a_logging_failure_never_breaks_the_model_call() -> None:
    @timed_decorator(Recorder(fail=True), "churn", "1")
    def predict(features: dict[str, int]) -> int:
        return 7

    assert predict({"x": 1}) == 7
