"""ClickHouse: parts, rows and bytes per table (``system.parts``), free disk (``system.disks``), advice rows.

Both adapters connect on first use and again after an error, so the advisor starts, and waits, while
ClickHouse is away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.advisor.domain import table
from services.advisor.domain.advice import DiskReading
from shared.events import ScaleAdvised

PARTS = (
    "SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts "
    "WHERE active AND database = {db:String} GROUP BY table ORDER BY table"
)
FREE = "SELECT min(free_space) FROM system.disks"


class _Lazy:
    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._client: Any = None

    def _run(self, work: Callable[[Any], Any]) -> Any:
        if self._client is None:
            self._client = self._connect()
            self._opened(self._client)
        try:
            return work(self._client)
        except Exception:
            self._client = None  # a fresh connection next time
            raise

    def _opened(self, client: Any) -> None:
        """Set-up on each new connection."""


class ClickHouseStorage(_Lazy):
    """The service's ``StorageSource``: one query each on ``system.parts`` and ``system.disks``."""

    def __init__(self, connect: Callable[[], Any], database: str) -> None:
        super().__init__(connect)
        self.database = database

    def read(self) -> tuple[DiskReading, dict[str, dict[str, int]]] | None:
        def query(client: Any) -> tuple[list[Any], list[Any]]:
            rows = client.query(PARTS, parameters={"db": self.database}).result_rows
            return rows, client.query(FREE).result_rows

        rows, free = self._run(query)
        tables = {name: {"parts": int(p), "rows": int(r), "bytes": int(b)} for name, p, r, b in rows}
        free_bytes = int(free[0][0]) if free and free[0][0] is not None else 0
        return DiskReading(0.0, {t: v["bytes"] for t, v in tables.items()}, free_bytes), tables


class ClickHouseAdviceSink(_Lazy):
    """The service's ``AdviceSink``: rows of ``scale_advice`` (created on each new connection, if absent)."""

    def __init__(self, connect: Callable[[], Any], retention_days: int = 365) -> None:
        super().__init__(connect)
        self.retention_days = retention_days

    def _opened(self, client: Any) -> None:
        client.command(table.ddl(self.retention_days))

    def write(self, events: Sequence[ScaleAdvised]) -> None:
        rows = [table.row(e) for e in events]
        self._run(lambda client: client.insert(table.TABLE, rows, column_names=table.COLUMN_NAMES))
