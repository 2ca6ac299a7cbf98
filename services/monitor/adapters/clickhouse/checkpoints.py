"""Reads each model's latest evaluation checkpoint back from ClickHouse (they are written as ``monitor_progress`` rows)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.domain.tables import MONITOR_PROGRESS


class ClickHouseCheckpoints:
    """The service's ``CheckpointReader``: the newest checkpoint per model (highest ``source_offset``)."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    def latest(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each model's progress per version; models never checkpointed are absent."""
        with self.sink.waits.timing():
            rows = self.sink.client.query(
                f"SELECT model_name, argMax(versions, source_offset) FROM {MONITOR_PROGRESS.name} "
                "WHERE model_name IN {models:Array(String)} GROUP BY model_name",
                parameters={"models": list(models)},
            ).result_rows
        return {model: json.loads(versions) for model, versions in rows}
