"""``driftloop bench estimate``: performance estimated without labels (CBPE), through the real monitor.

Streams with labels arriving ``LABEL_DELAY`` after their predictions (event time), each scored by a model
trained before the stream, whose calibration is fitted on its holdout (``shared/estimator.py``):

- ``est-river-covariate``, ``est-river-stationary``, ``est-river-concept``: river's rotating-hyperplane
  generator (``river_streams``): inputs crowding the decision boundary after a change point (the relation
  between inputs and label holds), nothing changing, and the label's relation to the inputs changing;
- ``est-covariate``, ``est-stationary``, ``est-concept``: the same three cases made with numpy
  (``synthetic``), with Bayes probabilities that are smooth rather than river's 90/10 label noise;
- ``est-rainfall``: the demo's NOAA rainfall data (``driftloop/demo/dataset.py``), whose drift at row 12,000
  is data and concept drift at once.

Estimation must track the realized accuracy under covariate shift and alert before the labels-based check
can, stay quiet on stationary streams, and is expected to fail under concept shift (CBPE's blind spot: the
probabilities are as confident as before), where the labels-based check must catch it.

Everything runs on a real local Kafka and ClickHouse with a real monitor worker (``python -m services.monitor
--profiles``): predictions with their probabilities and the delayed labels are published, the worker judges
the windows, and the figures are read back from ``window_metrics`` (the ``estimation_error`` view) and
``drift_events``. Lead times are in event time: an estimated alert is known when its window closes, a
labels-based one when the label wait after its window is over (``DRIFTLOOP_MONITOR_LABEL_WAIT_SECONDS``).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.bench.cleanup import clean_up
from driftloop.bench.monitor import publish_events, start_monitor_worker, write_profiles
from shared.estimator import fit_estimator
from shared.profile import ReferenceProfile, build_profile
from shared.settings import Settings
from shared.wire import LabelWire, PredictionWire

WINDOW_S = 60
LABEL_DELAY = timedelta(minutes=5)
LABEL_WAIT_S = 6 * 60
"""The monitor judges a window's labels this long after it closed: longer than the labels' delay."""
PER_WINDOW = 2_000
FEATURES = [f"x{i}" for i in range(6)]
CONCEPT_NOTE = (
    "concept shift: the estimate is expected NOT to follow the realized accuracy (CBPE assumes P(y|x) "
    "holds; the model is as confident as before); the labels-based performance check must catch it"
)

RAINFALL_NOTE = (
    "the rainfall drift is mostly concept drift (how rain follows from the weather changes): the model "
    "grows more confident while its accuracy falls, so the estimate cannot see it; the labels-based check does"
)


@dataclass(frozen=True)
class Stream:
    """One model's stream: features (rows x features), labels, and where the change is (row index)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    change_at: int | None
    features: Sequence[str]
    rows_per_window: int = PER_WINDOW


def _logit(x: np.ndarray) -> np.ndarray:
    return 2.5 * x[:, 0] - 2.0 * x[:, 1] + 1.0 * x[:, 2] * x[:, 3]


def _draw(rng: np.random.Generator, n: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    x = rng.normal(0.0, 1.0, (n, len(FEATURES)))
    x[:, 0] = x[:, 0] * scale + offset  # the covariate shift: the informative inputs crowd the boundary
    x[:, 1] = x[:, 1] * scale
    return x


def _labels(rng: np.random.Generator, logit: np.ndarray) -> np.ndarray:
    return (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(int)


def synthetic(kind: str, windows: int, change_window: int, seed: int) -> Stream:
    """``kind``: 'covariate', 'stationary' or 'concept' (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    n, change = windows * PER_WINDOW, change_window * PER_WINDOW
    x = _draw(rng, n)
    if kind == "covariate":
        x[change:] = _draw(rng, n - change, scale=0.45, offset=0.3)
    logit = _logit(x)
    if kind == "concept":
        flipped = np.arange(n) >= change
        flipped &= x[:, 2] > 0  # half the space now means the other class
        logit = np.where(flipped, -logit, logit)
    return Stream(f"est-{kind}", x, _labels(rng, logit), change if kind != "stationary" else None, FEATURES)


def reference(seed: int, rows: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = _draw(rng, rows)
    return x, _labels(rng, _logit(x))


def train(
    x: np.ndarray, y: np.ndarray, features: Sequence[str], holdout_share: float = 0.3
) -> tuple[Any, ReferenceProfile]:
    """Fit on the first rows, calibrate and score on the last (the trainer's holdout), profile the fit rows."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    cut = round(len(x) * (1 - holdout_share))
    frame = pd.DataFrame(x, columns=list(features))
    model = HistGradientBoostingClassifier(max_iter=150, random_state=0).fit(frame.iloc[:cut], y[:cut])
    held = frame.iloc[cut:]
    accuracy = float((model.predict(held) == y[cut:]).mean())
    estimator = fit_estimator(model, held, y[cut:], list(features), classification=True)
    profile = build_profile(
        {f: frame[f].iloc[:cut].to_numpy() for f in features},
        predictions=[str(v) for v in model.predict(frame.iloc[:cut])],
        metrics={"accuracy": accuracy},
        estimator=estimator,
    )
    return model, profile


def events(
    stream: Stream, model: Any, start: datetime
) -> tuple[Iterator[PredictionWire], Iterator[LabelWire], timedelta]:
    """The stream's predictions (with probabilities) and its labels ``LABEL_DELAY`` later, in event time."""
    import pandas as pd

    from shared.answer_type import plain

    spacing = timedelta(seconds=WINDOW_S) / stream.rows_per_window
    frame = pd.DataFrame(stream.x, columns=list(stream.features))
    proba = model.predict_proba(frame)
    classes = [plain(c) for c in model.classes_]
    keys = [str(c) for c in classes]
    predicted = proba.argmax(axis=1)
    values = np.round(stream.x, 6).tolist()

    def predictions() -> Iterator[PredictionWire]:
        for i, row in enumerate(values):
            yield PredictionWire(
                model_name=stream.name,
                model_version="1",
                prediction_id=f"{stream.name}-{i}",
                occurred_at=start + i * spacing,
                features=dict(zip(stream.features, row, strict=True)),
                prediction=classes[predicted[i]],
                probabilities=dict(zip(keys, proba[i].tolist(), strict=True)),
            )

    def labels() -> Iterator[LabelWire]:
        for i, label in enumerate(stream.y.tolist()):
            yield LabelWire(
                model_name=stream.name,
                prediction_id=f"{stream.name}-{i}",
                occurred_at=start + i * spacing + LABEL_DELAY,
                label=label,
            )

    return predictions(), labels(), spacing


RIVER_FEATURES = [f"h{i}" for i in range(6)]
RIVER_SKIP = 30_000
"""Rows a river stream skips before its stream part: a generator re-seeded from the start would otherwise
replay the reference rows the model was trained on."""


def _river_rows(dataset: Any, skip: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    import itertools

    rows = list(itertools.islice(iter(dataset), skip, skip + n))
    x = np.asarray([[r[0][i] for i in range(len(RIVER_FEATURES))] for r in rows], dtype=float)
    return x, np.asarray([int(r[1]) for r in rows])


def river_streams(
    windows: int, stationary_windows: int, change_window: int
) -> list[tuple[Stream, Any, ReferenceProfile]]:
    """river's rotating-hyperplane generator (6 features, 10% label noise): covariate shift, none, concept shift.

    Covariate shift is made by selection after the change point: rows the model is sure about (top
    probability above 0.8) are kept with probability 0.05, so the stream crowds near the hyperplane while
    the generator's P(y|x) is untouched. Concept shift switches to a hyperplane of other weights (the same
    uniform inputs), as river's ``ConceptDriftStream`` does.
    """
    import pandas as pd
    from river.datasets import synth

    def plane(seed: int) -> Any:
        return synth.Hyperplane(seed=seed, n_features=len(RIVER_FEATURES), noise_percentage=0.1)

    x_ref, y_ref = _river_rows(plane(1), 0, 20_000)
    model, profile = train(x_ref, y_ref, RIVER_FEATURES)
    n, change = windows * PER_WINDOW, change_window * PER_WINDOW
    rng = np.random.default_rng(4)
    # covariate: the first `change` rows as they come, then a selection of 4x as many
    x_pool, y_pool = _river_rows(plane(1), RIVER_SKIP, change + 12 * (n - change))
    sure = model.predict_proba(pd.DataFrame(x_pool[change:], columns=RIVER_FEATURES)).max(axis=1) > 0.8
    keep = np.flatnonzero(~sure | (rng.random(len(sure)) < 0.05))[: n - change] + change
    x_cov = np.concatenate([x_pool[:change], x_pool[keep]])
    y_cov = np.concatenate([y_pool[:change], y_pool[keep]])
    x_calm, y_calm = _river_rows(plane(1), 2 * RIVER_SKIP, stationary_windows * PER_WINDOW)
    # what river's ConceptDriftStream does with an abrupt change, spliced here: its sigmoid overflows
    # (math range error) for a narrow change this far into a stream
    x_old, y_old = _river_rows(plane(1), 3 * RIVER_SKIP, change)
    x_new, y_new = _river_rows(plane(7), RIVER_SKIP, n - change)
    x_con, y_con = np.concatenate([x_old, x_new]), np.concatenate([y_old, y_new])
    return [
        (Stream("est-river-covariate", x_cov, y_cov, change, RIVER_FEATURES), model, profile),
        (Stream("est-river-stationary", x_calm, y_calm, None, RIVER_FEATURES), model, profile),
        (Stream("est-river-concept", x_con, y_con, change, RIVER_FEATURES), model, profile),
    ]


def rainfall_stream() -> tuple[Stream, Any, ReferenceProfile]:
    """The demo's data and plan: trained on rows 8,000-11,000 (last 20% held out), streamed from 11,000."""
    from driftloop.demo.dataset import rainfall, rainfall_plan
    from driftloop.demo.model import build_pipeline

    data, plan = rainfall(), rainfall_plan()
    fit, held = plan.fit_rows, plan.validation_rows
    model = build_pipeline().fit(data.X(fit), data.y(fit))
    accuracy = float((model.predict(data.X(held)) == np.asarray(data.y(held))).mean())
    estimator = fit_estimator(model, data.X(held), data.y(held), list(data.features), classification=True)
    profile = build_profile(
        {f: data.frame[f].iloc[fit.start : fit.stop].to_numpy() for f in data.features},
        predictions=[str(p) for p in model.predict(data.X(fit))],
        metrics={"accuracy": accuracy},
        estimator=estimator,
    )
    rows = range(plan.train.stop, len(data))
    x = data.X(rows).to_numpy()
    stream = Stream(
        "est-rainfall",
        x,
        np.asarray(data.y(rows), dtype=object),
        data.change_point - rows.start,
        data.features,
        rows_per_window=500,
    )
    return stream, model, profile


def _query(client: Any, sql: str, **params: Any) -> list[Sequence[Any]]:
    return list(client.query(sql, parameters=params).result_rows)


def figures(
    client: Any, name: str, events_n: int, start: datetime, spacing: timedelta, change_at: int | None
) -> dict[str, Any]:
    """One stream's figures from what the monitor stored."""
    errors = _query(
        client,
        "SELECT window_start, estimated, realized, abs_error FROM estimation_error "
        "WHERE model_name = {m:String} AND metric = 'accuracy' AND realized IS NOT NULL ORDER BY window_start",
        m=name,
    )
    alerts = _query(
        client,
        "SELECT kinds, window_end FROM drift_events FINAL WHERE model_name = {m:String} "
        "AND event_type = 'drift_detected' ORDER BY window_end",
        m=name,
    )
    estimated = [a[1].replace(tzinfo=UTC) for a in alerts if "estimated_performance" in a[0]]
    labelled = [a[1].replace(tzinfo=UTC) for a in alerts if "performance" in a[0]]
    change = start + spacing * change_at if change_at is not None else None
    after = [a for a in estimated if change is None or a >= change]  # alerts before the change are false
    known_est = after[0] if after else None  # known when its window closes (allowed lateness 0)
    known_lab = labelled[0] + timedelta(seconds=LABEL_WAIT_S) if labelled else None
    lead = (known_lab - known_est).total_seconds() if known_est and known_lab else None
    false_alarms = len(estimated) - len(after) if change is not None else len(estimated)
    return {
        "windows": len(errors),
        "estimate_mae": round(float(np.mean([e[3] for e in errors])), 4) if errors else None,
        "estimate_max_error": round(float(np.max([e[3] for e in errors])), 4) if errors else None,
        "estimated_alarms": len(estimated),
        "performance_alarms": len(labelled),
        "false_estimated_alarms": false_alarms,
        "false_estimated_alarms_per_million": round(false_alarms * 1e6 / events_n, 2),
        "estimate_lead_s": lead,
        "estimated_alarm_delay_s": (known_est - change).total_seconds() if known_est and change else None,
        "performance_alarm_delay_s": (known_lab - change).total_seconds() if known_lab and change else None,
        "per_window": [(f"{w:%H:%M}", round(e, 3), round(r, 3)) for w, e, r, _ in errors],
    }


def main(windows: int = 30, stationary_windows: int = 60) -> dict[str, Any]:
    from driftloop.infra.stack import Component, local_stack
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{tag}-",
            "clickhouse_database": f"bench_{tag}",
            "monitor_window_seconds": WINDOW_S,
            "monitor_allowed_lateness_seconds": 0,
            "monitor_label_wait_seconds": LABEL_WAIT_S,
        }
    )
    began = time.monotonic()
    x_ref, y_ref = reference(seed=11)
    model, profile = train(x_ref, y_ref, FEATURES)
    streams = [
        *river_streams(windows, stationary_windows, windows // 3),
        (synthetic("covariate", windows, windows // 3, seed=1), model, profile),
        (synthetic("stationary", stationary_windows, 0, seed=2), model, profile),
        (synthetic("concept", windows, windows // 3, seed=3), model, profile),
        rainfall_stream(),
    ]
    assert profile.estimator is not None
    print(
        f"synthetic model: holdout accuracy {profile.metrics['accuracy']:.3f}, "
        f"calibration error (ECE) {profile.estimator.calibration_error:.3f}; label delay {LABEL_DELAY}, "
        f"windows of {WINDOW_S}s"
    )
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    out: dict[str, dict[str, Any]] = {}
    with (
        local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]),
        tempfile.TemporaryDirectory() as tmp,
    ):
        topics = topic_names(settings.topic_prefix)
        create_topics(
            settings.kafka_bootstrap,
            topics.all(),
            settings.kafka_partitions,
            settings.kafka_replication_factor,
        )
        profiles = write_profiles(Path(tmp), {s.name: p for s, _, p in streams})
        spacings: dict[str, timedelta] = {}
        total = 0
        for stream, m, _ in streams:
            predictions, labels, spacings[stream.name] = events(stream, m, start)
            total += asyncio.run(publish_events(settings.kafka_bootstrap, topics.labels, labels))
            asyncio.run(publish_events(settings.kafka_bootstrap, topics.predictions, predictions))
            print(f"published {len(stream.y):,} predictions and labels of {stream.name}")
        worker, _ = start_monitor_worker(settings, profiles, Path(tmp), name="monitor-estimate")
        try:
            client = clickhouse_client(settings)
            for stream, _, _ in streams:
                closed = len(stream.y) // stream.rows_per_window - LABEL_WAIT_S // WINDOW_S - 2
                _wait_windows(client, stream.name, closed, worker)
            for stream, _, _ in streams:
                out[stream.name] = figures(
                    client, stream.name, len(stream.y), start, spacings[stream.name], stream.change_at
                )
        finally:
            worker.stop()
            clean_up(settings)
    for name, f in out.items():
        print(f"{name}: " + json.dumps({k: v for k, v in f.items() if k != "per_window"}))
        print(f"  per window (start, estimated, realized accuracy): {f['per_window']}")
    cov, calm, concept = (out[f"est-river-{k}"] for k in ("covariate", "stationary", "concept"))
    ncov, ncalm, nconcept = (out[f"est-{k}"] for k in ("covariate", "stationary", "concept"))
    rain = out["est-rainfall"]
    calm_events = sum(len(s.y) for s, _, _ in streams if s.name.endswith("stationary"))
    calm_alarms = calm["false_estimated_alarms"] + ncalm["false_estimated_alarms"]
    result = {
        "estimate_mae": cov["estimate_mae"],
        "estimate_lead_s": cov["estimate_lead_s"],
        "false_estimated_alarms_per_million": round(calm_alarms * 1e6 / calm_events, 2),
        "stationary_events": calm_events,
        "concept_estimate_mae": concept["estimate_mae"],
        "concept_estimate_lead_s": concept["estimate_lead_s"],
        "concept_estimated_alarms": concept["estimated_alarms"],
        "concept_performance_alarms": concept["performance_alarms"],
        "numpy_estimate_mae": ncov["estimate_mae"],
        "numpy_estimate_lead_s": ncov["estimate_lead_s"],
        "numpy_concept_estimate_mae": nconcept["estimate_mae"],
        "numpy_concept_estimated_alarms": nconcept["estimated_alarms"],
        "numpy_concept_performance_alarms": nconcept["performance_alarms"],
        "rainfall_estimate_mae": rain["estimate_mae"],
        "rainfall_estimate_lead_s": rain["estimate_lead_s"],
        "rainfall_estimated_alarms": rain["estimated_alarms"],
        "rainfall_performance_alarms": rain["performance_alarms"],
        "concept_note": CONCEPT_NOTE,
        "rainfall_note": RAINFALL_NOTE,
        "label_delay_s": LABEL_DELAY.total_seconds(),
        "window_s": WINDOW_S,
        "runner": "real monitor worker on local Kafka + ClickHouse",
        "wall_s": round(time.monotonic() - began, 1),
    }
    print(json.dumps(result))
    return result


def _wait_windows(client: Any, model: str, closed: int, worker: Any, timeout: float = 900) -> None:
    """Until the monitor has judged ``closed`` label windows of ``model`` (their realized metrics exist)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = int(
                client.command(
                    "SELECT count() FROM window_metrics FINAL WHERE model_name = {m:String} "
                    "AND metric = 'label_coverage'",
                    parameters={"m": model},
                )
            )
        except Exception:  # the worker has not created the tables yet
            found = -1
        if found >= closed:
            return
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the monitor worker exited; see {worker.log_path}")
        time.sleep(1)
    raise RuntimeError(
        f"{model}: fewer than {closed} label windows judged after {timeout:.0f}s; see {worker.log_path}"
    )
