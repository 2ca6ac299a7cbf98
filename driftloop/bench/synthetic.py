"""Seeded synthetic prediction streams with a known change point, for benchmarks, tests and demos."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from shared.profile import ReferenceProfile, build_profile
from shared.wire import LabelWire, PredictionWire

CATEGORIES = ["a", "b", "c", "d"]
BASE_SHARES = [0.4, 0.3, 0.2, 0.1]
SHIFTED_SHARES = [0.1, 0.2, 0.3, 0.4]


@dataclass(frozen=True)
class StreamSpec:
    """A model's stream: ``numeric`` + ``categorical`` features; ``shifted`` ones change at ``change_at``."""

    model_name: str
    numeric: int = 16
    categorical: int = 4
    shifted: tuple[str, ...] = ()
    change_at: int | None = None
    numeric_shift: float = 0.8
    model_version: str = "1"
    seed: int = 0
    names: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        names = [f"num_{i}" for i in range(self.numeric)] + [f"cat_{i}" for i in range(self.categorical)]
        object.__setattr__(self, "names", names)


def _columns(spec: StreamSpec, rng: np.random.Generator, n: int, shifted: bool) -> dict[str, list[object]]:
    cols: dict[str, list[object]] = {}
    for i in range(spec.numeric):
        name = f"num_{i}"
        mean = spec.numeric_shift if shifted and name in spec.shifted else 0.0
        cols[name] = np.round(rng.normal(mean, 1.0, n), 4).tolist()
    for i in range(spec.categorical):
        name = f"cat_{i}"
        shares = SHIFTED_SHARES if shifted and name in spec.shifted else BASE_SHARES
        cols[name] = rng.choice(CATEGORIES, n, p=shares).tolist()
    return cols


def reference_profile(
    spec: StreamSpec, rows: int = 20_000, accuracy: float | None = None
) -> ReferenceProfile:
    """The profile of the stream before any change, as the trainer would record it."""
    rng = np.random.default_rng(spec.seed + 1_000_003)
    cols = _columns(spec, rng, rows, shifted=False)
    outputs = rng.choice(["0", "1"], rows, p=[0.6, 0.4]).tolist()
    return build_profile(
        cols, predictions=outputs, metrics={"accuracy": accuracy} if accuracy is not None else None
    )


def predictions(
    spec: StreamSpec, n: int, start: datetime, spacing: timedelta, chunk: int = 10_000
) -> Iterator[PredictionWire]:
    """``n`` prediction events ``spacing`` apart in event time from ``start``, generated in chunks."""
    rng = np.random.default_rng(spec.seed)
    step = spacing.total_seconds()
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        before = size if spec.change_at is None else max(0, min(size, spec.change_at - offset))
        parts = [_columns(spec, rng, before, False), _columns(spec, rng, size - before, True)]
        cols = {k: parts[0][k] + parts[1][k] for k in parts[0]}
        outputs = rng.choice([0, 1], size, p=[0.6, 0.4])
        latency = np.round(rng.gamma(2.0, 1.5, size), 3)
        for j in range(size):
            i = offset + j
            p1 = 0.8 if outputs[j] else 0.2
            yield PredictionWire(
                model_name=spec.model_name,
                model_version=spec.model_version,
                prediction_id=f"{spec.model_name}-{i}",
                occurred_at=start + timedelta(seconds=i * step),
                features={name: cols[name][j] for name in spec.names},  # type: ignore[misc]
                prediction=int(outputs[j]),
                probabilities={"0": 1 - p1, "1": p1},
                latency_ms=float(latency[j]),
            )


def labels(
    spec: StreamSpec,
    n: int,
    start: datetime,
    spacing: timedelta,
    accuracy_before: float,
    accuracy_after: float,
    delay: timedelta = timedelta(minutes=5),
) -> Iterator[LabelWire]:
    """Ground truth for ``predictions(spec, ...)``: right with ``accuracy_before``, then ``accuracy_after``.

    Must use the same ``spec`` (seed) as the predictions so the outputs it compares against match.
    """
    outputs = [int(p.prediction) for p in predictions(spec, n, start, spacing)]
    rng = np.random.default_rng(spec.seed + 7)
    step = spacing.total_seconds()
    change = spec.change_at if spec.change_at is not None else n
    for i, output in enumerate(outputs):
        right = rng.random() < (accuracy_before if i < change else accuracy_after)
        yield LabelWire(
            model_name=spec.model_name,
            prediction_id=f"{spec.model_name}-{i}",
            occurred_at=start + timedelta(seconds=i * step) + delay,
            label=output if right else 1 - output,
        )
