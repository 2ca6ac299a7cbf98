"""The live terminal view: one timeline of every step of the loop, from any thread, in the order seen.

Steps come from three places: the simulated app (traffic, the drift beginning, the server swapping, the
accuracy recovering), the loop's topics (drift detected, training, promotion) and the monitor's tables
(windows). :func:`step_for_event` and :class:`TrafficProgress` turn them into steps; :class:`Timeline`
keeps them and prints each as one line.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from driftloop.demo.app import Refused, Served
from driftloop.demo.observers import Seen, WindowSeen
from shared.events import (
    AliasChanged,
    DriftDetected,
    DriftRecovered,
    ModelVersionRegistered,
    RankedFeature,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)


class Step(StrEnum):
    """The kinds of step, roughly in the order a successful run shows them."""

    SYSTEM_UP = "system up"
    MODEL_REGISTERED = "registered"
    SERVER_READY = "serving"
    TRAFFIC = "traffic"
    DRIFT_BEGINS = "data drifts"
    WINDOW = "window"
    DRIFT_DETECTED = "DRIFT"
    TRAINING_STARTED = "training"
    TRAINING_FINISHED = "trained"
    TRAINING_FAILED = "train fail"
    VERSION_REGISTERED = "new version"
    PROMOTED = "PROMOTED"
    SERVER_SWAPPED = "SWAPPED"
    ACCURACY_RECOVERED = "recovered"
    DRIFT_RECOVERED = "calm again"
    REFUSED = "refused"
    TRAFFIC_DONE = "traffic end"
    STORED = "stored"


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when (wall-clock seconds), what kind, the text, and the facts behind it."""

    at: float
    step: Step
    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Timeline:
    """Thread-safe list of entries; each is printed through ``echo`` as it is added."""

    def __init__(self, echo: Callable[[str], None], started_at: float | None = None) -> None:
        self.echo = echo
        self.started_at = started_at if started_at is not None else time.time()
        self.entries: list[Entry] = []
        self._lock = threading.Lock()

    def add(self, step: Step, text: str, at: float | None = None, **data: Any) -> Entry:
        entry = Entry(at if at is not None else time.time(), step, text, data)
        with self._lock:
            self.entries.append(entry)
            self.echo(f"[{entry.at - self.started_at:6.1f}s] {step.value:<12} {text}")
        return entry

    def first(self, step: Step, **match: Any) -> Entry | None:
        """The first entry of ``step`` whose data holds every ``match`` item."""
        with self._lock:
            for entry in self.entries:
                if entry.step is step and all(entry.data.get(k) == v for k, v in match.items()):
                    return entry
        return None

    def all(self, step: Step) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.step is step]


def _features(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names) if names else "no single feature"


def ranking_text(ranked: Sequence[RankedFeature], moved: float | None) -> str:
    """Drifted features by importance x effect, and how much of the model's importance moved.

    >>> ranking_text([RankedFeature(feature="a", importance=0.5, effect=3.0, score=1.5)], 0.5)
    "a (importance 50% x effect 3.0 = 1.50); 50% of the model's importance moved"
    """
    parts = []
    for f in ranked:
        if f.importance is None:
            parts.append(f"{f.feature} (effect {f.effect:.1f})")
        else:
            ignored = ", ignored" if f.ignored else ""
            parts.append(
                f"{f.feature} (importance {f.importance:.0%} x effect {f.effect:.1f} = {f.score:.2f}{ignored})"
            )
    moved_text = "importance unknown" if moved is None else f"{moved:.0%} of the model's importance moved"
    return f"{', '.join(parts)}; {moved_text}"


def step_for_event(seen: Seen, first_version: int) -> tuple[Step, str, dict[str, Any]] | None:
    """The timeline step an event of the loop stands for, or None for events the view leaves out."""
    e = seen.event
    if isinstance(e, DriftDetected):
        kinds = "+".join(k.value for k in e.kinds)
        text = (
            f"monitor: {kinds} drift of v{e.model_version} in {_features(e.drifted_features)} "
            f"({e.windows_drifted} of {e.windows_considered} windows, severity {e.severity:.2f}) "
            f"-> {seen.topic}"
        )
        if e.ranked_features:
            text += f"; what matters: {ranking_text(e.ranked_features, e.importance_share_drifted)}"
        if e.estimated_accuracy_change is not None:
            text += f"; estimated accuracy change before labels: {e.estimated_accuracy_change:+.2f}"
        found: dict[str, Any] = {
            "version": e.model_version,
            "features": list(e.drifted_features),
            "kinds": kinds,
            "ranked": [f.model_dump(mode="json") for f in e.ranked_features],
            "importance_share_drifted": e.importance_share_drifted,
            "estimated_accuracy_change": e.estimated_accuracy_change,
        }
        return Step.DRIFT_DETECTED, text, found
    if isinstance(e, DriftRecovered):
        text = (
            f"monitor: v{e.model_version} no longer drifting (its recent windows are clean) -> {seen.topic}"
        )
        return Step.DRIFT_RECOVERED, text, {"version": e.model_version}
    if isinstance(e, TrainingRunStarted):
        return Step.TRAINING_STARTED, f"trainer: run {str(e.run_id)[:8]} started ({e.reason})", {}
    if isinstance(e, TrainingRunFinished):
        champion = f"{e.champion_score:.3f}" if e.champion_score is not None else "none"
        verdict = e.gate or ("promoted" if e.promoted else "not promoted: stays a candidate")
        text = (
            f"trainer: challenger v{e.model_version} {e.metric} {e.challenger_score:.3f} vs champion "
            f"{champion} on the same held-out rows: {verdict} ({e.duration_s:.1f}s)"
        )
        data: dict[str, Any] = {
            "version": int(e.model_version),
            "challenger": e.challenger_score,
            "champion": e.champion_score,
            "promoted": e.promoted,
            "gate": e.gate,
        }
        return Step.TRAINING_FINISHED, text, data
    if isinstance(e, TrainingRunRejected | TrainingRunFailed):
        why = "; ".join(e.problems) if isinstance(e, TrainingRunRejected) else e.error
        return Step.TRAINING_FAILED, f"trainer: run {str(e.run_id)[:8]} ended without a model: {why}", {}
    if isinstance(e, ModelVersionRegistered) and e.version != first_version:
        return Step.VERSION_REGISTERED, f"registry: v{e.version} registered -> {seen.topic}", {}
    if isinstance(e, AliasChanged) and e.alias == "production" and e.version not in (None, first_version):
        text = f"registry: production v{e.previous_version} -> v{e.version} -> {seen.topic}"
        return Step.PROMOTED, text, {"version": e.version, "previous": e.previous_version}
    return None


def window_text(window: WindowSeen) -> str:
    """One window as a line: its time, traffic, drifted features (or the largest effect) and accuracy."""
    span = f"{window.start:%H:%M:%S}-{window.end:%H:%M:%S}"
    parts = [f"monitor: v{window.version} {span} {window.count:>4} predictions"]
    if window.accuracy is not None:
        parts.append(
            f"accuracy {window.accuracy:.2f}" + (" (performance drift)" * window.performance_drifted)
        )
    elif window.drifted_features:
        parts.append(f"drift in {', '.join(window.drifted_features)}")
    elif window.largest_effect is not None:
        name, value = window.largest_effect
        parts.append(f"no drift (largest effect {name} {value:.2f} sd)")
    if window.output_drifted and window.accuracy is None:
        parts.append("outputs drift")
    return ", ".join(parts)


class TrafficProgress:
    """Turns the app's answers into steps: periodic traffic lines, the drift beginning, the swap, recovery."""

    def __init__(
        self,
        timeline: Timeline,
        change_point: int,
        first_version: int,
        *,
        every_s: float = 5.0,
        recent: int = 200,
    ) -> None:
        self.timeline = timeline
        self.change_point = change_point
        self.first_version = first_version
        self.version = first_version
        self.every_s = every_s
        self._recent: deque[bool] = deque(maxlen=recent)
        self._count = 0
        self._last_line = (time.time(), 0)
        self._drifting = False
        self._during: list[bool] = []
        self._recovered = False

    def served(self, s: Served) -> None:
        self._count += 1
        if s.row >= self.change_point and not self._drifting:
            self._drifting = True
            self.timeline.add(
                Step.DRIFT_BEGINS,
                f"app: row {s.row:,} of the data, where its documented drift starts",
                at=s.at,
                row=s.row,
            )
        if s.version != self.version:
            self.timeline.add(
                Step.SERVER_SWAPPED,
                f"model server: answered by v{s.version} (was v{self.version}), no restart, no failed request",
                at=s.at,
                version=s.version,
                previous=self.version,
            )
            self.version = s.version
            self._recent.clear()
        self._recent.append(s.correct)
        if self._drifting and s.version == self.first_version:
            self._during.append(s.correct)
        self._check_recovered(s)
        now = time.time()
        if now - self._last_line[0] >= self.every_s:
            rate = (self._count - self._last_line[1]) / (now - self._last_line[0])
            accuracy = sum(self._recent) / len(self._recent)
            self.timeline.add(
                Step.TRAFFIC,
                f"app: {self._count:,} predictions ({rate:.0f}/s), served by v{s.version}, "
                f"accuracy of the last {len(self._recent)}: {accuracy:.2f}",
                at=now,
                count=self._count,
                accuracy=accuracy,
            )
            self._last_line = (now, self._count)

    def _check_recovered(self, s: Served) -> None:
        """Once the new version has answered as many rows as the rolling window, compare it with the old."""
        if (
            self._recovered
            or s.version == self.first_version
            or len(self._recent) < (self._recent.maxlen or 0)
        ):
            return
        self._recovered = True
        new = sum(self._recent) / len(self._recent)
        old = sum(self._during) / len(self._during) if self._during else float("nan")
        self.timeline.add(
            Step.ACCURACY_RECOVERED,
            f"app: v{s.version} got {new:.2f} of its first {len(self._recent)} answers right "
            f"(v{self.first_version} after the drift: {old:.2f})",
            at=s.at,
            accuracy=new,
        )

    def refused(self, r: Refused) -> None:
        self.timeline.add(
            Step.REFUSED, f"app: row {r.row} not answered ({r.status}): {r.detail[:120]}", at=r.at
        )
