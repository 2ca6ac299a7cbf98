"""The ``serving_usage`` table in ClickHouse: where a standalone model server records what it served and spent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.serving.domain.usage import USAGE_COLUMNS, serving_usage_ddl


class UsageTable:
    """One clickhouse-connect client, opened on first write and again after a failed one (ClickHouse away)."""

    def __init__(self, connect: Callable[[], Any], table: str = "serving_usage") -> None:
        self._connect = connect
        self._table = table
        self._client: Any = None

    def write(self, row: list[Any]) -> None:
        """Insert one row; raises when ClickHouse does not take it (the reporter keeps the counts and retries)."""
        try:
            if self._client is None:
                client = self._connect()
                client.command(serving_usage_ddl(self._table))
                self._client = client
            self._client.insert(self._table, [row], column_names=USAGE_COLUMNS)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()
