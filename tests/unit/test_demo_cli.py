"""``driftloop demo`` is a thin command: it runs the demo, prints the summary, and with --json ends on it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from driftloop.cli.main import app
from driftloop.demo.app import Served
from driftloop.demo.summary import summarize


def _result(closed: bool) -> Any:
    served = [Served(r, str(r), float(r), 1 if r < 15 else 2, "a", "a" if r < 5 or r >= 15 else "b", 1.0)
              for r in range(30)]  # fmt: skip
    summary = summarize(served, 5, 1, 8.0 if closed else None, 2, 1.0, report_path="/tmp/r/report.html")
    return SimpleNamespace(
        summary=summary,
        png_path=Path("/tmp/r/accuracy-drift.png"),
        screenshots=[Path("/tmp/r/console-models.png")],
    )


@pytest.mark.parametrize("closed", [True, False])
def test_demo_ends_with_the_summary_as_json_and_fails_when_the_loop_did_not_close(
    monkeypatch: pytest.MonkeyPatch, closed: bool
) -> None:
    asked: dict[str, Any] = {}

    def fake_run_demo(settings: Any, options: Any, echo: Any) -> Any:
        asked["options"] = options
        echo("[   0.0s] system up    ...")
        return _result(closed)

    monkeypatch.setattr("driftloop.demo.run.run_demo", fake_run_demo)
    result = CliRunner().invoke(app, ["demo", "--json", "--fast", "--rate", "25", "--open"])
    assert result.exit_code == (0 if closed else 1), result.output
    assert asked["options"].fast and asked["options"].rate == 25 and asked["options"].open_console
    assert "console screenshot: /tmp/r/console-models.png" in result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["report_path"] == "/tmp/r/report.html" and last["promoted_version"] == 2
    assert set(last) >= {
        "drift_detected_after_events",
        "drift_to_serving_s",
        "accuracy_before",
        "accuracy_during",
        "accuracy_after",
        "oracle_accuracy",
    }
    assert "accuracy after recovery" in result.output and "report: /tmp/r/report.html" in result.output
