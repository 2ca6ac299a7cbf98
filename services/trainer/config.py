"""The trainer's settings, gathered from ``shared.settings.Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings


@dataclass(frozen=True)
class TrainerConfig:
    """``group``: consumer group shared by replicas (Kafka gives each model to one of them);
    ``debounce_seconds``: how long a trigger waits for others to coalesce with."""

    group: str = "driftloop-trainer"
    debounce_seconds: float = 2.0


def trainer_config(settings: Settings) -> TrainerConfig:
    return TrainerConfig(group=settings.trainer_group, debounce_seconds=settings.trainer_debounce_seconds)
