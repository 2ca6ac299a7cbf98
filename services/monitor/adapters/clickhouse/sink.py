"""Writes batches of rows into ClickHouse, retrying until accepted, so offsets are committed only after."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from services.monitor.adapters.clickhouse.native import native_block
from services.monitor.adapters.clickhouse.storage import INTAKE_ROWS_PER_LINE, schema
from services.monitor.adapters.clickhouse.waits import CLICKHOUSE_WAITS, RequestClock
from services.monitor.domain.event_columns import Columns, label_columns, prediction_columns
from services.monitor.domain.tables import LABELS, PREDICTIONS, Table
from services.monitor.errors import MonitorError
from shared.clickhouse import clickhouse_client
from shared.settings import Settings
from shared.validation import Wire

log = logging.getLogger(__name__)
T = TypeVar("T")
WRITE_SETTINGS = {"optimize_on_insert": 0}
"""Replays collapse at read time (``FINAL``, background merges); collapsing each inserted block as well
tripled the server's cost of storing a batch (docs/monitor.md)."""


REFUSAL_CODES = frozenset({6, 26, 27, 38, 41, 43, 53, 69, 70, 72, 117, 321, 376})
"""ClickHouse's error codes for a value it cannot parse or convert: the data is wrong, not the server."""
_CODE = re.compile(r"Code: (\d+)")


def _is_refusal(exc: Exception) -> bool:
    """Did the server refuse the data (retrying cannot help), rather than fail to take it?"""
    if not isinstance(exc, DatabaseError):
        return False
    match = _CODE.search(str(exc))
    return "while pushing to view" in str(exc) or (match is not None and int(match.group(1)) in REFUSAL_CODES)


def _written(summary: Any) -> int:
    """Rows the server says the insert wrote, views included (unknown: assume all of them)."""
    written = getattr(summary, "written_rows", None)
    return int(written) if written is not None else 1 << 62


class ClickHouseSink:
    """The service's ``RowSink`` on ClickHouse: one client per sink (clickhouse-connect clients are not shared
    across threads); tables made on open.

    A worker has two, so a batch's insert and the judging of the windows before it run side by side.
    """

    def __init__(
        self, settings: Settings, *, create_tables: bool = True, waits: RequestClock = CLICKHOUSE_WAITS
    ) -> None:
        self.settings = settings
        self.waits = waits
        """Counts the time this sink's requests (and reads through its client) wait for the server."""
        self.create_tables = create_tables
        self._client: Any = None
        self._contexts: dict[tuple[str, tuple[str, ...]], Any] = {}
        """Insert contexts per table and columns: the table's column types are asked for once, not per insert."""
        self.failing_since: float | None = None
        """Wall-clock time of the first failed attempt of the insert now being retried (None: healthy)."""
        self.last_error = ""
        self.busy_since: float | None = None
        """Wall-clock time the request now in flight was sent (None: idle); a hung server shows here."""

    @property
    def client(self) -> Any:
        if self._client is None:
            self.open()
        return self._client

    def open(self) -> None:
        client = clickhouse_client(
            self.settings, create_database=self.create_tables, query_settings=WRITE_SETTINGS
        )
        if self.create_tables:
            for ddl in schema(self.settings.monitor_retention_days):
                client.command(ddl)
        self._client = client

    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> int:
        """Insert ``rows`` (in ``table``'s declared column order) in one batch, waiting out ClickHouse however long it is away.

        Never skipping matters: the batch's offsets must not be committed unless ClickHouse holds its rows.
        """
        if not rows:
            return 0
        self.until_answered(
            f"inserting {len(rows)} rows into {table.name}",
            lambda: self._timed(
                lambda: self.client.insert(data=rows, context=self._context(table.name, table.column_names))
            ),
        )
        return len(rows)

    def _context(self, table: str, columns: Sequence[str]) -> Any:
        key = (table, tuple(columns))
        if key not in self._contexts:
            self._contexts[key] = self.client.create_insert_context(table, list(columns))
        return self._contexts[key]

    def write_events(self, table: Table, events: Sequence[Wire]) -> list[int]:
        """Insert decoded predictions or labels as ``table``'s typed columns (Native); returns those refused.

        The worker builds the columns from the events it decoded, so the server parses no JSON. An event
        whose values cannot become a column (an integer past Float64, a string UTF-8 cannot encode) or that
        the server refuses, or an insert whose written-row count falls short, makes the events be halved
        until the refused ones are found, so one never costs its neighbours and nothing vanishes.
        """
        if not events:
            return []
        build = _builder(table)
        try:
            body = native_block(build(events, int(time.time() * 1000)), table.columns)
        except (ValueError, OverflowError) as exc:  # UnicodeEncodeError is a ValueError
            summary, error = None, str(exc)
        else:
            summary = self.until_answered(
                f"inserting {len(events)} events into {table.name}",
                lambda: self._timed(
                    lambda: self.client.raw_insert(table.name, table.column_names, body, fmt="Native")
                ),
                refused=_is_refusal,
            )
            error = "the server refused them"
        if summary is not None and _written(summary) >= len(events):
            return []
        if len(events) == 1:
            log.warning("could not store an event in %s (%s): %r", table.name, error[:200], events[0])
            return [0]
        half = len(events) // 2
        refused = self.write_events(table, events[:half])
        return refused + [half + i for i in self.write_events(table, events[half:])]

    def write_lines(self, table: str, lines: Sequence[bytes]) -> list[int]:
        """Insert raw JSON documents, one per line, into an ``*_intake`` table; returns the lines refused.

        The view that parses the lines can fail on a document the contract let through. A ClickHouse server
        then refuses the insert with a parse error; the embedded server's engine (chDB's streaming insert)
        answers success and writes nothing, which only the written-row count shows (each line is a row in
        the intake table and one in the view's). Either way the lines are halved until the refused ones
        are found, so one bad document never costs its neighbours and nothing vanishes.
        """
        if not lines:
            return []
        body = b"\n".join(lines)
        summary = self.until_answered(
            f"inserting {len(lines)} events into {table}",
            lambda: self._timed(lambda: self.client.raw_insert(table, ["line"], body, fmt="LineAsString")),
            refused=_is_refusal,
        )
        if summary is not None and _written(summary) >= INTAKE_ROWS_PER_LINE * len(lines):
            return []
        if len(lines) == 1:
            log.warning("ClickHouse refused a document for %s: %s", table, lines[0][:200])
            return [0]
        half = len(lines) // 2
        refused = self.write_lines(table, lines[:half])
        return refused + [half + i for i in self.write_lines(table, lines[half:])]

    def _timed(self, request: Callable[[], T]) -> T:
        """``request``, marked as in flight meanwhile, so a hung server shows in ``busy_since``."""
        self.busy_since = time.time()
        self.waits.enter()
        try:
            return request()
        finally:
            self.waits.leave()
            self.busy_since = None

    def until_answered(
        self,
        what: str,
        attempt: Callable[[], T],
        *,
        errors: tuple[type[Exception], ...] = (Exception,),
        refused: Callable[[Exception], bool] = lambda exc: False,
    ) -> T | None:
        """Run ``attempt`` until ClickHouse answers (its result) or refuses the data (None).

        A server that is away is waited out, however long: a batch whose rows are not stored must not be
        committed, and a worker that exits would only be restarted to wait again. One line is logged when it
        goes and one when it is back; ``failing_since`` and ``last_error`` tell ``/health`` meanwhile.
        Only ``errors`` are waited out: anything else is a bug and raises.
        """
        delay = 0.2
        while True:
            try:
                result = attempt()
            except errors as exc:
                if refused(exc):
                    return None
                if self.failing_since is None:
                    log.warning("ClickHouse unavailable for %s (%s); retrying until it answers", what, exc)
                    self.failing_since = time.time()
                self.last_error = f"{what}: {str(exc)[:300]}"
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._client = None
                self._contexts.clear()
                continue
            if self.failing_since is not None:
                log.warning(
                    "ClickHouse available again for %s after %.0f s", what, time.time() - self.failing_since
                )
                self.failing_since, self.last_error = None, ""
            return result

    def until_reachable(self, what: str, attempt: Callable[[], T]) -> T:
        """``attempt`` again from the start while ClickHouse cannot be reached; any other error raises."""
        out = self.until_answered(what, attempt, errors=(OperationalError, OSError))
        assert out is not None  # nothing is refused here: it answers or it waits
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._contexts.clear()


def _builder(table: Table) -> Callable[[Any, int], Columns]:
    """What builds ``table``'s columns: it holds predictions or labels (under any name)."""
    if table.columns == PREDICTIONS.columns:
        return prediction_columns
    if table.columns == LABELS.columns:
        return label_columns
    raise MonitorError(f"{table.name} holds neither predictions nor labels: events cannot be stored in it")
