"""When a change counts as drift: defaults that suit most models, overridable per model in the registry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DriftThresholds(BaseModel):
    """Both significance and effect size must pass, K of the last M windows, so big samples don't cry wolf."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(
        0.01, gt=0, lt=1, description="False-discovery rate across a window's feature tests."
    )
    numeric_effect: float = Field(
        0.1, gt=0, description="Minimum Wasserstein distance, in reference standard deviations."
    )
    categorical_effect: float = Field(
        0.1, gt=0, le=1, description="Minimum Jensen-Shannon distance (base 2)."
    )
    min_window_size: int = Field(200, ge=10, description="Windows with fewer values are not tested.")
    drifted_share: float = Field(
        0.0, ge=0, lt=1, description="Feature drift needs more than this share of features drifting."
    )
    windows_needed: int = Field(2, ge=1, description="K: drifting windows needed among the last M.")
    windows_considered: int = Field(3, ge=1, description="M: how many recent windows are considered.")
    cooldown_windows: int = Field(
        5, ge=0, description="Windows after an alert before the model may alert again."
    )
    performance_drop: float = Field(
        0.05, ge=0, le=1, description="Drop of accuracy against validation that counts as performance drift."
    )
    confidence: float = Field(0.99, gt=0.5, lt=1, description="Confidence of the performance-drop interval.")
    min_importance_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Drift in a feature holding less than this share of the model's importance is ignored "
        "(0: off).",
    )

    @model_validator(mode="after")
    def _k_of_m(self) -> DriftThresholds:
        if self.windows_needed > self.windows_considered:
            raise ValueError("windows_needed (K) cannot exceed windows_considered (M)")
        return self
