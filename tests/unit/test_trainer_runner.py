"""A run's announcements: started, then exactly one of finished, rejected or failed, and a cost row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.trainer.domain.run_table import RUN_COLUMNS
from services.trainer.service import execute
from shared.events import (
    Event,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)
from tests.unit.test_trainer_pipeline import FakeRegistry, ports, query_rows, trigger


def _execute(registry: FakeRegistry, rows: Any, tmp_path: Path) -> tuple[list[Event], list[dict[str, Any]]]:
    events: list[Event] = []
    recorded: list[dict[str, Any]] = []
    execute(
        trigger(),
        ports(registry, rows, tmp_path),
        events.append,
        lambda row: recorded.append(dict(zip(RUN_COLUMNS, row, strict=True))),
    )
    return events, recorded


def test_a_good_run_is_announced_started_then_finished_with_its_cost(tmp_path: Path) -> None:
    events, recorded = _execute(FakeRegistry(), query_rows(600), tmp_path)
    assert [type(e) for e in events] == [TrainingRunStarted, TrainingRunFinished]
    assert events[0].run_id == events[1].run_id  # type: ignore[attr-defined]
    [row] = recorded
    assert row["status"] == "finished" and row["promoted"] == 1 and row["rows"] == 600 and row["cpu_s"] > 0


def test_bad_data_is_announced_as_rejected_with_the_problems(tmp_path: Path) -> None:
    events, recorded = _execute(FakeRegistry(), query_rows(600, text_at=500), tmp_path)
    assert [type(e) for e in events] == [TrainingRunStarted, TrainingRunRejected]
    assert recorded[0]["status"] == "rejected" and "'x'" in recorded[0]["detail"]


def test_a_crash_is_announced_as_failed_and_promotes_nothing(tmp_path: Path) -> None:
    registry = FakeRegistry(recipe={"estimator": {"factory": "sklearn.nope:Missing"}})
    events, recorded = _execute(registry, query_rows(600), tmp_path)
    assert [type(e) for e in events] == [TrainingRunStarted, TrainingRunFailed]
    assert "sklearn.nope:Missing" in events[1].error  # type: ignore[attr-defined]
    assert registry.aliases == {} and registry.versions == {}
    assert recorded[0]["status"] == "failed" and recorded[0]["promoted"] == 0
