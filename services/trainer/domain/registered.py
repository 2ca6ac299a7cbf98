"""A registered model as the trainer reads it from the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.feature_schema import FeatureSchema


@dataclass(frozen=True)
class RegisteredModel:
    """What the trainer reads of a model: its schema, recipe, aliases and tags."""

    name: str
    task_type: str
    feature_schema: FeatureSchema
    training_recipe: dict[str, Any]
    aliases: dict[str, int]
    tags: dict[str, str] = field(default_factory=dict)
