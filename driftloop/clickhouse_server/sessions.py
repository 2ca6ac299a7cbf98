"""``session_id`` as the embedded server keeps it: the session's name and expiry, never engine state.

Every request runs on a pooled chDB session reset to the server defaults, so a named session carries nothing from
one request to the next. What would need it (``SET``, ``USE``, a temporary table) is refused inside a named
session instead of being silently forgotten; ``session_check=1`` and ``session_timeout`` behave as in ClickHouse.
"""

from __future__ import annotations

import time

from driftloop.clickhouse_server.errors import (
    INVALID_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    SESSION_NOT_FOUND,
    ClickHouseError,
)

#: ClickHouse's ``default_session_timeout`` and ``max_session_timeout`` (seconds).
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
#: Named sessions remembered at once; past it the one closest to expiring is forgotten (memory stays bounded).
MAX_SESSIONS = 100_000


class Sessions:
    """Named sessions by (user, session_id), each alive until ``session_timeout`` seconds after its last use."""

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str], float] = {}
        self._swept = 0.0

    def __len__(self) -> int:
        return len(self._expiry)

    def use(self, user: str, session_id: str, timeout: str, check: bool) -> None:
        """Open or renew a session; with ``check`` it must exist already (code 372 otherwise)."""
        seconds = _timeout(timeout)
        now = time.monotonic()
        if now - self._swept > 1.0:  # at most once a second: a sweep reads every session
            self._expiry = {key: end for key, end in self._expiry.items() if end > now}
            self._swept = now
        key = (user, session_id)
        if check and self._expiry.get(key, 0.0) <= now:
            raise ClickHouseError(
                SESSION_NOT_FOUND,
                f"Code: {SESSION_NOT_FOUND}. DB::Exception: Session {session_id} not found. (SESSION_NOT_FOUND)",
            )
        if key not in self._expiry and len(self._expiry) >= MAX_SESSIONS:
            del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
        self._expiry[key] = now + seconds

    def close(self, user: str, session_id: str) -> None:
        self._expiry.pop((user, session_id), None)


def refuse_stateful(session_id: str, change: str) -> None:
    """Code 48 for a statement (``sql.session_change``) whose effect a named session would have to keep."""
    if session_id and change:
        raise ClickHouseError(
            NOT_IMPLEMENTED,
            f"Code: {NOT_IMPLEMENTED}. DB::Exception: {change} in a session (session_id) is not supported by "
            "the embedded ClickHouse server: it keeps no state between requests. Pass settings as URL "
            "parameters, the database as database=, and data as external tables. (NOT_IMPLEMENTED)",
        )


def _timeout(value: str) -> float:
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_TIMEOUT:
        raise ClickHouseError(
            INVALID_SESSION_TIMEOUT,
            f"Code: {INVALID_SESSION_TIMEOUT}. DB::Exception: Session timeout '{value}' must be a number of "
            f"seconds from 0 to {MAX_TIMEOUT:.0f}. (INVALID_SESSION_TIMEOUT)",
        )
    return seconds
