"""The model server's usage: counted per request, recorded per interval, nothing lost when ClickHouse is away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.serving.domain.usage import USAGE_COLUMNS, Reading, UsageMeter, usage_row
from services.serving.entrypoints.usage import UsageReporter
from services.serving.service import ModelServer
from tests.unit.serving_fakes import OneVersionRegistry, serve_churn


class Clocks:
    def __init__(self) -> None:
        self.cpu, self.wall = 10.0, 100.0


class FlakyTable:
    """Refuses the writes it is told to, keeps the others."""

    def __init__(self, refuse: int = 0) -> None:
        self.rows: list[list[Any]] = []
        self.refuse = refuse

    def write(self, row: list[Any]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("ClickHouse away")
        self.rows.append(row)


def reporter(meter: UsageMeter, table: FlakyTable) -> UsageReporter:
    return UsageReporter(
        meter, table.write, model_name="churn", alias="production", server="h:1", interval_s=60
    )


def test_a_row_holds_what_happened_between_two_readings() -> None:
    row = usage_row(Reading(1, 1, 2.0, 10.0), Reading(4, 9, 2.5, 70.0), None, "churn", "production", "h:1")  # type: ignore[arg-type]
    assert dict(zip(USAGE_COLUMNS, row, strict=True)) | {"at": None} == {
        "at": None, "model_name": "churn", "alias": "production", "server": "h:1",
        "requests": 3, "predictions": 8, "cpu_s": 0.5, "interval_s": 60.0,
    }  # fmt: skip


def test_a_failed_write_is_covered_by_the_next_row() -> None:
    clocks = Clocks()
    meter = UsageMeter(cpu_seconds=lambda: clocks.cpu, clock=lambda: clocks.wall)
    table = FlakyTable(refuse=1)
    report = reporter(meter, table)
    meter.served(1)
    clocks.cpu, clocks.wall = 11.0, 160.0
    assert report.report() is False
    meter.served(2)
    clocks.cpu, clocks.wall = 11.5, 220.0
    assert report.report() is True
    [row] = table.rows
    values = dict(zip(USAGE_COLUMNS, row, strict=True))
    assert (values["requests"], values["predictions"], values["cpu_s"], values["interval_s"]) == (
        2,
        3,
        1.5,
        120.0,
    )


def test_the_server_counts_requests_and_predictions(tmp_path: Path) -> None:
    registry = OneVersionRegistry()
    meter = UsageMeter()
    table = FlakyTable()
    server = ModelServer("churn", registry=registry, load=None, meter=meter)  # type: ignore[arg-type]
    server.background.append(reporter(meter, table))
    serve_churn(server, registry, tmp_path)
    server.start()
    server.predict({"age": 41, "plan": "pro"})
    server.predict_many([{"age": 20, "plan": "free"}, {"age": 60, "plan": "pro"}])
    server.stop()  # writes the last interval
    values = dict(zip(USAGE_COLUMNS, table.rows[-1], strict=True))
    assert (values["requests"], values["predictions"]) == (2, 3)
    assert values["cpu_s"] > 0


def test_a_refused_request_is_not_counted(tmp_path: Path) -> None:
    registry, meter = OneVersionRegistry(), UsageMeter()
    server = ModelServer("churn", registry=registry, load=None, meter=meter)  # type: ignore[arg-type]
    serve_churn(server, registry, tmp_path)
    with pytest.raises(Exception, match="plan"):
        server.predict({"age": 41, "plan": 7})
    assert meter.read().requests == 0
