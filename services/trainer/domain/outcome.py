"""How a training run ended, as the world reads it: training-run events and the run's cost row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.trainer.domain.cost import CostRecord
from services.trainer.domain.debounce import Trigger
from services.trainer.domain.gate import GateDecision
from services.trainer.domain.run_table import run_row
from services.trainer.domain.validation import ValidationReport
from shared.events import (
    Event,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)

REASONS = ("drift", "manual", "schedule")


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``rejected`` (bad data, nothing trained) or ``finished`` (a version registered)."""

    run_id: UUID
    status: str
    cutoff: datetime
    report: ValidationReport | None = None
    version: int | None = None
    decision: GateDecision | None = None
    cost: CostRecord | None = None


def started_event(trigger: Trigger, run_id: UUID) -> TrainingRunStarted:
    return TrainingRunStarted(
        model_name=trigger.model_name,
        run_id=run_id,
        trigger_event_id=trigger.event_id,
        reason=trigger.reason if trigger.reason in REASONS else "manual",
    )


def outcome_event(trigger: Trigger, outcome: RunOutcome, duration_s: float) -> Event:
    """``finished`` with both scores, or ``rejected`` with the validation report's problems."""
    common: dict[str, Any] = {
        "model_name": trigger.model_name,
        "run_id": outcome.run_id,
        "trigger_event_id": trigger.event_id,
    }
    if outcome.status == "rejected":
        problems = outcome.report.problems if outcome.report else ["rejected"]
        return TrainingRunRejected(**common, problems=problems)
    assert outcome.decision is not None and outcome.version is not None
    return TrainingRunFinished(
        **common,
        model_version=str(outcome.version),
        challenger_score=outcome.decision.challenger_score,
        champion_score=outcome.decision.champion_score,
        metric=outcome.decision.metric,
        promoted=outcome.decision.promote,
        duration_s=duration_s,
        gate=outcome.decision.verdict,
    )


def cost_row(
    trigger: Trigger,
    run_id: UUID,
    result: Event,
    outcome: RunOutcome | None,
    started_at: datetime,
    finished_at: datetime,
) -> list[Any]:
    cost = outcome.cost if outcome else None
    decision = outcome.decision if outcome else None
    detail = ""
    if isinstance(result, TrainingRunRejected):
        detail = "; ".join(result.problems)
    elif isinstance(result, TrainingRunFailed):
        detail = result.error
    elif decision is not None:
        detail = "; ".join(decision.reasons)
    return run_row(
        {
            "run_id": run_id,
            "model_name": trigger.model_name,
            "status": result.event_type.removeprefix("training_run_"),
            "reason": trigger.reason,
            "trigger_event_id": trigger.event_id,
            "model_version": outcome.version if outcome else None,
            "promoted": int(bool(decision and decision.promote)),
            "metric": decision.metric if decision else "",
            "challenger_score": decision.challenger_score if decision else None,
            "champion_score": decision.champion_score if decision else None,
            "started_at": started_at,
            "finished_at": finished_at,
            "wall_s": cost.wall_s if cost else (finished_at - started_at).total_seconds(),
            "cpu_s": cost.cpu_s if cost else 0.0,
            "peak_memory_mb": cost.peak_memory_mb if cost else 0.0,
            "rows": cost.rows if cost else 0,
            "bytes_read": cost.bytes_read if cost else 0,
            "artifact_bytes": sum(cost.artifact_bytes.values()) if cost else 0,
            "detail": detail,
        }
    )
