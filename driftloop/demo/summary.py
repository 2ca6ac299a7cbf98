"""The figures a run ends with, computed from what the app was answered and when the loop acted. Pure.

* detection delay: predictions served after the change point before the drift event was read;
* drift to serving: seconds from the first post-drift request to the first answer of the promoted version;
* accuracy before the drift, during it (the old version on drifted data) and after recovery (every answer
  of a retrained version), next to the oracle's accuracy on those same rows.

A drift can be followed by more than one retraining (a later alert on newer data, e.g. the performance
alert once the labels are in); ``promoted_version`` is the version serving at the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from driftloop.demo.app import Served

RECOVERY_TOLERANCE = 0.02  # "recovered" means within two accuracy points of the oracle


def _share_correct(served: Sequence[Served]) -> float | None:
    return sum(s.correct for s in served) / len(served) if served else None


@dataclass(frozen=True)
class Summary:
    """The run's figures; ``as_json`` has the keys ``driftloop demo --json`` promises, then the rest."""

    drift_detected_after_events: int | None
    drift_to_serving_s: float | None
    accuracy_before: float | None
    accuracy_during: float | None
    accuracy_after: float | None
    oracle_accuracy: float | None
    promoted_version: int | None
    report_path: str | None = None
    drifted_features: list[str] = field(default_factory=list)
    change_point_row: int = 0
    predictions: int = 0
    predictions_before: int = 0
    predictions_during: int = 0
    predictions_after: int = 0
    refused: int = 0
    challenger_score: float | None = None
    champion_score: float | None = None
    run_seconds: float | None = None
    drift_ranking: str = ""
    """The alert's drifted features by importance x effect and the share of importance moved (timeline text)."""
    importance_share_drifted: float | None = None
    ranked_features: list[dict[str, Any]] = field(default_factory=list)
    """The same ranking as ``DriftDetected.ranked_features`` (feature, importance, effect, score, ignored)."""

    @property
    def recovered(self) -> bool:
        """Accuracy after recovery is within two points of the oracle's on the same rows."""
        if self.accuracy_after is None or self.oracle_accuracy is None:
            return False
        return self.accuracy_after >= self.oracle_accuracy - RECOVERY_TOLERANCE

    @property
    def loop_closed(self) -> bool:
        """Drift detected after the change point, a new version promoted and served, accuracy recovered."""
        return (
            self.drift_detected_after_events is not None
            and self.drift_detected_after_events > 0
            and self.promoted_version is not None
            and self.drift_to_serving_s is not None
            and self.recovered
        )

    def as_json(self) -> dict[str, Any]:
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        values["recovered"] = self.recovered
        values["loop_closed"] = self.loop_closed
        return values

    def json_line(self) -> str:
        return json.dumps(self.as_json(), sort_keys=False)

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (figure, value) pairs, for the terminal and the report."""

        def acc(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        delay = (
            "never"
            if self.drift_detected_after_events is None
            else f"{self.drift_detected_after_events:,} predictions after the change point (row {self.change_point_row:,})"
        )
        serving = "never" if self.drift_to_serving_s is None else f"{self.drift_to_serving_s:.1f}s"
        promoted = "none" if self.promoted_version is None else f"v{self.promoted_version}"
        return [
            ("drift detected", delay),
            ("drifted features", ", ".join(self.drifted_features) or "n/a"),
            ("drift that matters", self.drift_ranking or "n/a"),
            ("promoted", f"{promoted} serving at the end (challenger {acc(self.challenger_score)} vs champion "
                         f"{acc(self.champion_score)} on the same held-out rows)"),
            ("drift to new model", f"{serving} from the first drifted request to the first answer of a "
                                   "retrained version"),
            ("accuracy before drift", f"{acc(self.accuracy_before)} ({self.predictions_before:,} predictions)"),
            ("accuracy during drift", f"{acc(self.accuracy_during)} ({self.predictions_during:,} predictions "
                                      "by the old version)"),
            ("accuracy after recovery", f"{acc(self.accuracy_after)} ({self.predictions_after:,} predictions "
                                        "by retrained versions)"),
            ("oracle accuracy", f"{acc(self.oracle_accuracy)} (same recipe trained on the other post-drift "
                                "rows, scored on the same rows)"),
            ("within 2 points of oracle", "yes" if self.recovered else "no"),
        ]  # fmt: skip

    def lines(self) -> list[str]:
        return [f"{name:<26}{value}" for name, value in self.rows()]


def summarize(
    served: Sequence[Served],
    change_point: int,
    first_version: int,
    drift_detected_at: float | None,
    promoted_version: int | None,
    oracle: float | None,
    **extra: Any,
) -> Summary:
    """The summary of a run from the app's answers and when (wall-clock seconds) drift was announced.

    Answers by ``first_version`` after the change point are "during"; answers by any other version (the
    retrained ones) are "after recovery".

    Examples
    --------
    >>> rows = [Served(r, str(r), float(r), 1 if r < 14 else 2, "a", "a" if r < 10 or r >= 14 else "b", 1.0)
    ...         for r in range(20)]
    >>> s = summarize(rows, change_point=10, first_version=1, drift_detected_at=12.5, promoted_version=2,
    ...               oracle=1.0)
    >>> s.drift_detected_after_events, s.drift_to_serving_s, s.accuracy_during, s.accuracy_after, s.recovered
    (3, 4.0, 0.0, 1.0, True)
    """
    before = [s for s in served if s.row < change_point]
    drifted = [s for s in served if s.row >= change_point]
    during = [s for s in drifted if s.version == first_version]
    after = [s for s in served if s.version != first_version]
    detected_after = None
    if drift_detected_at is not None:
        detected_after = sum(1 for s in drifted if s.at <= drift_detected_at)
    to_serving = None
    if drifted and after:
        to_serving = round(after[0].at - drifted[0].at, 2)
    return Summary(
        drift_detected_after_events=detected_after,
        drift_to_serving_s=to_serving,
        accuracy_before=_share_correct(before),
        accuracy_during=_share_correct(during),
        accuracy_after=_share_correct(after),
        oracle_accuracy=oracle,
        promoted_version=promoted_version,
        change_point_row=change_point,
        predictions=len(served),
        predictions_before=len(before),
        predictions_during=len(during),
        predictions_after=len(after),
        **extra,
    )
