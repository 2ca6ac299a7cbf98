"""A loaded model version, where an alias points, and a model's answers as the event contract takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared.answer_type import OutputType, as_output_type, output_type_of
from shared.feature_schema import FeatureSchema


@dataclass(frozen=True)
class AliasTarget:
    """The version an alias points at, and the artifact to load for it."""

    version: int
    artifact_uri: str
    artifact_sha256: str


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version; swapped as a whole, so a request sees one version from start to end."""

    model_name: str
    version: int
    sha256: str
    estimator: Any
    feature_schema: FeatureSchema = field(default_factory=FeatureSchema)
    output_type: OutputType | None = None  # recorded at registration; answers are converted to it
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def plain(value: Any) -> bool | int | float | str:
    """A numpy scalar as the JSON-able Python value the event contract takes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def answered_type(champion: LoadedModel | None) -> OutputType | None:
    """The type the version serving until now answered with: what a version with no recorded type inherits."""
    if champion is None:
        return None
    return champion.output_type or output_type_of(champion.estimator)


def answer(value: Any, output_type: OutputType | None) -> bool | int | float | str:
    """One model output as JSON, in the type recorded for the version (when one is and it converts).

    Examples
    --------
    >>> answer(np.str_("0"), "int"), answer(np.int64(1), None), answer("maybe", "int")
    (0, 1, 'maybe')
    """
    value = plain(value)
    if output_type is None:
        return value
    try:
        return as_output_type(value, output_type)
    except (ValueError, OverflowError):  # an answer that is not of the recorded type is served as it is
        return value
