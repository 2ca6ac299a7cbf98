"""Benchmark: prediction events encoded, decoded and validated per second on one core."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from shared import codec, wire
from shared.events import PredictionLogged


def sample_prediction_fields(rng: random.Random, n_features: int = 10) -> dict[str, Any]:
    """A realistic prediction: numeric and categorical features, a missing value, class probabilities."""
    features: dict[str, Any] = {f"num_{i}": rng.gauss(0, 1) for i in range(n_features - 2)}
    features["plan"] = rng.choice(["free", "pro", "enterprise"])
    features["tenure"] = None
    p = rng.random()
    return {
        "model_name": "churn",
        "model_version": "7",
        "prediction_id": f"p-{rng.getrandbits(64):x}",
        "features": features,
        "prediction": int(p > 0.5),
        "probabilities": {"0": 1 - p, "1": p},
        "latency_ms": rng.uniform(0.5, 5.0),
    }


def _rate(n: int, step: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - start)


def run(n: int = 200_000, seed: int = 7) -> dict[str, float]:
    """Round-trip ``n`` events through both codecs; returns events/s for each path."""
    rng = random.Random(seed)
    fields = [sample_prediction_fields(rng) for _ in range(1000)]
    wire_events = [wire.PredictionWire(**f) for f in fields]
    contract_events = [PredictionLogged(**f) for f in fields]

    i = iter(range(n))

    def wire_step() -> object:
        return wire.decode_prediction(wire.encode(wire_events[next(i) % 1000]))

    wire_rate = _rate(n, wire_step)
    j = iter(range(n // 4))

    def pydantic_step() -> object:
        return codec.decode(codec.encode(contract_events[next(j) % 1000]), PredictionLogged)

    pydantic_rate = _rate(n // 4, pydantic_step)
    return {
        "wire_roundtrip_events_per_s": round(wire_rate),
        "pydantic_roundtrip_events_per_s": round(pydantic_rate),
    }


def main(n: int = 200_000) -> dict[str, float]:
    figures = run(n)
    print(f"prediction events, encode+decode+validate, one core, {n:,} events")
    print(f"  wire (msgspec) fast path : {figures['wire_roundtrip_events_per_s']:>10,.0f} events/s")
    print(f"  pydantic contract models : {figures['pydantic_roundtrip_events_per_s']:>10,.0f} events/s")
    print(json.dumps(figures))
    return figures
