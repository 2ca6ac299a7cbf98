"""``driftloop bench drift``: milliseconds to judge one window against a reference profile, and to build one.

Cases: 20 numeric features, and 15 numeric + 5 categorical, each against a profile of 1,000 and of 100,000
reference rows, with windows of 10,000 and 100,000 rows. A window is handed over as the window reader
returns it (numeric columns as float arrays, categorical ones as lists of strings) and judged by the
monitor's own ``evaluate_data_window`` (feature and output drift plus the window's metrics); the drift
tests alone (``feature_drift``) are timed beside it. The profile build is timed from 100,000 reference
rows given as columns (numpy arrays and pandas Series, as the trainer passes them) and as Python lists.
Each figure is the median of ``repeat`` runs; the machine's load average is printed with them.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from services.monitor.domain.drift.columns import feature_drift
from services.monitor.domain.evaluation import DataWindow, evaluate_data_window
from shared.drift_thresholds import DriftThresholds
from shared.profile import ReferenceProfile, build_profile

CATEGORIES = np.asarray(["a", "b", "c", "d", "e", "f"])
SHARES = [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _columns(rng: np.random.Generator, n: int, numeric: int, categorical: int) -> dict[str, Any]:
    cols: dict[str, Any] = {f"num_{i}": np.round(rng.normal(i, 1 + i / 10, n), 4) for i in range(numeric)}
    cols.update({f"cat_{i}": rng.choice(CATEGORIES, n, p=SHARES) for i in range(categorical)})
    return cols


def _window(rng: np.random.Generator, n: int, numeric: int, categorical: int) -> DataWindow:
    cols = _columns(rng, n, numeric, categorical)
    predictions = rng.choice(np.asarray(["0", "1"]), n, p=[0.6, 0.4]).tolist()
    return DataWindow(
        start=START,
        end=START + timedelta(minutes=1),
        count=n,
        latency_ms=rng.gamma(2.0, 1.5, n),
        predictions=predictions,
        prediction_num=np.asarray(predictions, dtype=float),
        numeric={k: v for k, v in cols.items() if k.startswith("num_")},
        categorical={k: v.tolist() for k, v in cols.items() if k.startswith("cat_")},
        missing={},
    )


def _profile(rng: np.random.Generator, n: int, numeric: int, categorical: int) -> ReferenceProfile:
    cols = _columns(rng, n, numeric, categorical)
    outputs = rng.choice(np.asarray(["0", "1"]), n, p=[0.6, 0.4])
    return build_profile(cols, predictions=outputs, metrics={"accuracy": 0.9})


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(repeat: int = 5) -> None:
    rng = np.random.default_rng(21)
    t = DriftThresholds()
    figures: dict[str, float] = {}
    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; median of {repeat}"
    )
    print(f"{'features':<10} {'reference':>10} {'window':>8} {'judge ms':>9} {'drift ms':>9}  drifted")
    for label, numeric, categorical in (("20num", 20, 0), ("15num+5cat", 15, 5)):
        for ref_rows in (1_000, 100_000):
            profile = _profile(rng, ref_rows, numeric, categorical)
            for rows in (10_000, 100_000):
                window = _window(rng, rows, numeric, categorical)
                columns: dict[str, Any] = {**window.numeric, **window.categorical}
                judge = _median_ms(partial(evaluate_data_window, window, profile, t), repeat)
                tests = _median_ms(partial(feature_drift, profile, columns, t), repeat)
                drifted = evaluate_data_window(window, profile, t).verdict.drifted_features
                key = f"{label}_ref{ref_rows // 1000}k_win{rows // 1000}k"
                figures[f"judge_ms_{key}"] = round(judge, 1)
                figures[f"drift_tests_ms_{key}"] = round(tests, 1)
                print(
                    f"{label:<10} {ref_rows:>10,} {rows:>8,} {judge:>9.1f} {tests:>9.1f}  {list(drifted) or 'none'}"
                )
    reference = _columns(rng, 100_000, 15, 5)
    outputs = rng.choice(np.asarray(["0", "1"]), 100_000, p=[0.6, 0.4])
    build = _median_ms(partial(build_profile, reference, predictions=outputs), repeat)
    as_lists = {k: v.tolist() for k, v in reference.items()}
    listed = _median_ms(partial(build_profile, as_lists, predictions=outputs.tolist()), repeat)
    print(
        f"profile of 100,000 rows x 15 numeric + 5 categorical: {build:.1f} ms from arrays, {listed:.1f} ms from lists"
    )
    judged = [v for k, v in figures.items() if k.startswith("judge_ms_")]
    summary = {
        "judge_ms_worst": max(judged),
        "profile_build_ms_100k": round(build, 1),
        "profile_build_ms_100k_lists": round(listed, 1),
        "load_average_1m": round(load[0], 2),
        "cores": os.cpu_count(),
        **figures,
    }
    print(json.dumps(summary))
