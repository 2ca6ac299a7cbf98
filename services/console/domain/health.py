"""A model's health at a glance, from its last window and its last drift announcement.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> last = LastWindow("2", now - timedelta(minutes=2), now - timedelta(minutes=1), 120)
>>> health(last, None, serving="2", has_profile=True, now=now)
'ok'
>>> health(last, LastEvent("drift_detected", "2", ("performance",)), serving="2", has_profile=True, now=now)
'degraded'
>>> health(last, LastEvent("drift_detected", "1", ("feature",)), serving="2", has_profile=True, now=now)
'ok'
>>> health(None, None, serving="2", has_profile=True, now=now)
'no traffic'
>>> health(last, None, serving="2", has_profile=False, now=now)
'no profile'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STATUSES = ("ok", "drifting", "degraded", "no traffic", "no profile")
QUIET_WINDOWS = 3
"""A model whose last window ended this many window lengths ago (at least five minutes) has no traffic."""


@dataclass(frozen=True)
class LastWindow:
    """The latest judged window of a model (any version): when, and how many predictions it held."""

    version: str
    start: datetime
    end: datetime
    predictions: float


@dataclass(frozen=True)
class LastEvent:
    """The model's latest drift announcement: detected (with its kinds) or recovered, and on which version."""

    event_type: str
    version: str
    kinds: tuple[str, ...]


def health(
    last: LastWindow | None, event: LastEvent | None, *, serving: str | None, has_profile: bool, now: datetime
) -> str:
    """One of :data:`STATUSES`: no traffic beats no profile beats degraded (accuracy fell) beats drifting."""
    if last is None or last.predictions <= 0:
        return "no traffic"
    quiet = max((last.end - last.start) * QUIET_WINDOWS, timedelta(minutes=5))
    if now - last.end > quiet:
        return "no traffic"
    if serving is not None and not has_profile:
        return "no profile"
    if event is None or event.event_type != "drift_detected" or (serving and event.version != serving):
        return "ok"
    return "degraded" if "performance" in event.kinds else "drifting"
