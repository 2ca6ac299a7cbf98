"""The ClickHouse adapter: runs the training-window query and records runs in ``training_runs``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from services.trainer.dataset import WindowQuery
from services.trainer.storage import RUN_COLUMNS, training_runs_ddl
from shared.clickhouse import clickhouse_client
from shared.settings import Settings


class Warehouse:
    """One clickhouse-connect client, used from the single thread that runs trainings."""

    def __init__(self, settings: Settings) -> None:
        self._client = clickhouse_client(settings)

    def ensure_schema(self) -> None:
        self._client.command(training_runs_ddl())

    def fetch_window(self, query: WindowQuery) -> pd.DataFrame:
        """The labelled window as the query returns it (feature maps still maps)."""
        frame: pd.DataFrame = self._client.query_df(query.sql, parameters=query.parameters)
        return frame

    def ping(self) -> None:
        """Raises when ClickHouse does not answer (the worker then waits for it)."""
        self._client.command("SELECT 1")

    def record_run(self, row: list[Any]) -> None:
        self._client.insert("training_runs", [row], column_names=RUN_COLUMNS)

    def close(self) -> None:
        self._client.close()
