"""The ClickHouse adapter: runs the training-window query and records runs in ``training_runs``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from services.trainer.domain.dataset import WindowQuery
from services.trainer.domain.run_table import RUN_COLUMNS, training_runs_ddl


class Warehouse:
    """One clickhouse-connect client, used from the single thread that runs trainings.

    ``connect`` opens the client (it talks to ClickHouse at once); it is called on first use and again after
    a failed attempt, so a warehouse built while ClickHouse is away connects when it is back.
    """

    def __init__(self, connect: Callable[[], Client]) -> None:
        self._connect = connect
        self._opened: Client | None = None

    @property
    def _client(self) -> Client:
        if self._opened is None:
            self._opened = self._connect()
        return self._opened

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
        if self._opened is not None:
            self._opened.close()
