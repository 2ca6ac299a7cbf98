"""Each model's evaluation progress, kept in ClickHouse so a restarted or rebalanced worker resumes from it.

A worker owns a model while it owns the model's partition (events are keyed by model name). It saves the
model's progress with the batch, before committing the batch's offsets, so the checkpoint is never behind
the committed offsets: a replay after a crash only re-stores rows (deduplicated) and never re-judges a
window the checkpoint already passed. On a rebalance the worker forgets what it cached and the next owner
reads the checkpoint back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.monitor.sink import ClickHouseSink

TABLE = "monitor_progress"
COLUMNS = ["model_name", "versions", "source_offset", "worker", "saved_at"]


class ProgressCheckpoints:
    """Cached per model; ``load`` reads what is missing in one query, ``save`` writes a batch's in one insert."""

    def __init__(self, sink: ClickHouseSink, worker: str) -> None:
        self.sink = sink
        self.worker = worker
        self._cache: dict[str, dict[str, Any]] = {}

    def load(self, models: set[str]) -> None:
        missing = sorted(models - self._cache.keys())
        if not missing:
            return
        rows = self.sink.client.query(
            f"SELECT model_name, argMax(versions, source_offset) FROM {TABLE} "
            "WHERE model_name IN {models:Array(String)} GROUP BY model_name",
            parameters={"models": missing},
        ).result_rows
        found = {model: json.loads(versions) for model, versions in rows}
        for model in missing:
            self._cache[model] = found.get(model, {})

    def models(self) -> list[str]:
        """The models this worker judged since its partitions were last assigned."""
        return sorted(self._cache)

    def get(self, model: str) -> dict[str, Any]:
        """The model's progress per version as JSON-ready dicts (empty for a model never seen)."""
        return self._cache[model]

    def save(self, states: dict[str, tuple[dict[str, Any], int]]) -> None:
        """Store each model's new progress with the offset it covers; cached only once ClickHouse has it."""
        now = datetime.now(UTC)
        rows = [
            [model, json.dumps(versions), offset, self.worker, now]
            for model, (versions, offset) in states.items()
        ]
        self.sink.write(TABLE, rows, COLUMNS)
        for model, (versions, _) in states.items():
            self._cache[model] = versions

    def forget(self) -> None:
        """Drop the cache (partitions were revoked): the next owner's checkpoints are the truth."""
        self._cache.clear()
