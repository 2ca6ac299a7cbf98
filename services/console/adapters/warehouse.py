"""ClickHouse, read only: runs the console's named queries (``domain/queries.py``) and returns plain rows.

A table the loop has not created yet (a fresh system, no trainer run so far) reads as no rows, not an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from services.console.errors import ConsoleError

MISSING = ("UNKNOWN_TABLE", "doesn't exist", "does not exist", "Unknown table")


class Warehouse:
    """One clickhouse-connect client per thread (clients are not shared across threads)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
        return client

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            result = self._client().query(sql, parameters=dict(params))
        except Exception as exc:
            text = str(exc)
            if any(m in text for m in MISSING):
                return []
            self._local.client = None  # a broken connection is rebuilt on the next query
            raise ConsoleError(
                f"ClickHouse query failed ({text[:300]}); check DRIFTLOOP_CLICKHOUSE_URL"
            ) from exc
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
