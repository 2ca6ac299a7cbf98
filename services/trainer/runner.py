"""Runs one trigger as a training run and turns its outcome into training-run events and a cost row.

Kept apart from the Kafka loop so the same code serves the worker and ``driftloop train --local``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.trainer.debounce import Trigger
from services.trainer.pipeline import RunOutcome, RunPorts, run_training
from services.trainer.storage import run_row
from shared.events import (
    Event,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)

log = logging.getLogger(__name__)
REASONS = ("drift", "manual", "schedule")


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


def execute(
    trigger: Trigger,
    ports: RunPorts,
    publish: Callable[[Event], None],
    record: Callable[[list[Any]], None] | None = None,
) -> tuple[Event, RunOutcome | None]:
    """Run ``trigger``, publishing started then finished/rejected/failed; a crash is reported, not raised."""
    run_id = uuid4()
    started_at = ports.now()
    publish(started_event(trigger, run_id))
    outcome: RunOutcome | None = None
    try:
        outcome = run_training(trigger, ports, run_id)
        finished_at = datetime.now(UTC)
        result = outcome_event(trigger, outcome, (finished_at - started_at).total_seconds())
    except Exception as exc:  # any failure ends this run only; the next trigger retries
        log.exception("training run %s of %s failed", run_id, trigger.model_name)
        finished_at = datetime.now(UTC)
        result = TrainingRunFailed(
            model_name=trigger.model_name,
            run_id=run_id,
            trigger_event_id=trigger.event_id,
            error=f"{type(exc).__name__}: {exc}"[:4000],
        )
    publish(result)
    if record is not None:
        try:
            record(_cost_row(trigger, run_id, result, outcome, started_at, finished_at))
        except Exception:  # the cost row is a report; losing it must not fail the run
            log.exception("could not record training run %s in ClickHouse", run_id)
    return result, outcome


def _cost_row(
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
