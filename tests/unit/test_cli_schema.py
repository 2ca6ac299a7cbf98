from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from driftloop.cli.main import app
from shared.events import EVENTS_BY_TYPE


def test_schema_export_writes_one_valid_schema_per_event(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name.removesuffix(".schema.json") for p in tmp_path.glob("*.schema.json")}
    assert written == set(EVENTS_BY_TYPE)
    schema = json.loads((tmp_path / "prediction_logged.schema.json").read_text())
    assert {"event_id", "model_name", "features", "prediction"} <= set(schema["properties"])
