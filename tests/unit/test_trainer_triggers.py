"""Which events start training runs, and how the CLI reports a run's end."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from driftloop.cli.train import describe
from services.trainer.domain.triggers import decode_triggers
from shared.codec import encode
from shared.events import (
    DriftDetected,
    DriftKind,
    RetrainModel,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_drift_and_retrain_commands_are_triggers_and_run_events_are_not() -> None:
    drift = DriftDetected(
        model_name="churn",
        model_version="3",
        kinds=[DriftKind.FEATURE],
        severity=0.3,
        occurred_at=NOW,
        window_start=NOW,
        window_end=NOW,
        windows_considered=3,
        windows_drifted=2,
    )
    manual = RetrainModel(model_name="fraud", reason="manual", occurred_at=NOW)
    started = TrainingRunStarted(model_name="churn", run_id=uuid4(), reason="drift")
    drifts = decode_triggers([encode(drift), b"not json", None], "drift-events", now=NOW)
    commands = decode_triggers([encode(manual), encode(started)], "training-runs", now=NOW)
    assert [(t.model_name, t.reason) for t in drifts + commands] == [("churn", "drift"), ("fraud", "manual")]
    assert drifts[0].drift_event_id == drift.event_id and drifts[0].window_start == NOW


def test_the_cli_says_how_a_run_ended() -> None:
    finished = TrainingRunFinished(
        model_name="churn",
        run_id=uuid4(),
        model_version="4",
        challenger_score=0.91,
        champion_score=0.8,
        metric="accuracy",
        promoted=True,
        duration_s=3.2,
    )
    assert (
        describe(finished) == "version 4: accuracy 0.9100 (champion 0.8000), promoted to production, in 3.2s"
    )
    rejected = TrainingRunRejected(model_name="churn", run_id=uuid4(), problems=["feature 'x' is text"])
    assert "feature 'x' is text" in describe(rejected)
