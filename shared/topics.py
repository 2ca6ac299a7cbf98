"""Driftloop's Kafka topic names, in one place, so producers, consumers and ``infra up`` never disagree."""

from __future__ import annotations

from dataclasses import astuple, dataclass


@dataclass(frozen=True)
class Topics:
    """The canonical topics, each already carrying the deployment's ``topic_prefix``."""

    predictions: str
    labels: str
    dead_letter: str
    drift_events: str
    model_events: str
    training_runs: str
    data_quality: str
    predictions_raw: str
    labels_raw: str
    scale_advice: str

    def all(self) -> tuple[str, ...]:
        """Every topic, for creating them up front (``driftloop infra up``)."""
        return tuple(str(name) for name in astuple(self))


def topic_names(prefix: str = "") -> Topics:
    """The topics under ``prefix`` (``settings.topic_prefix``); a prefix isolates tenants and test runs."""
    return Topics(
        predictions=f"{prefix}predictions",
        labels=f"{prefix}labels",
        dead_letter=f"{prefix}dead-letter",
        drift_events=f"{prefix}drift-events",
        model_events=f"{prefix}model-events",
        training_runs=f"{prefix}training-runs",
        data_quality=f"{prefix}data-quality",
        # producers (SDK, model servers) write here; the ingest validator checks each event once and
        # forwards it to ``predictions``/``labels`` or to ``dead-letter`` (docs/ingest.md)
        predictions_raw=f"{prefix}predictions-raw",
        labels_raw=f"{prefix}labels-raw",
        scale_advice=f"{prefix}scale-advice",  # the scaling advisor's ScaleAdvised events
    )


def monitor_group(prefix: str = "") -> str:
    """The monitor workers' consumer group; the scaling advisor reads its lag."""
    return f"{prefix}driftloop-monitor"
