"""What the registry is waiting for, for ``/healthz``: each dependency away and why, logged once per change."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Dependencies:
    """Which dependencies (database, Kafka via the outbox relay, webhooks) are away and why.

    ``away`` and ``back`` are called on every attempt; only a change of state is logged, so an outage of
    an hour is two log lines, not one per retry.
    """

    def __init__(self) -> None:
        self._away: dict[str, str] = {}

    def away(self, name: str, reason: str) -> None:
        if name not in self._away:
            log.warning("%s: unavailable (%s); retrying with backoff", name, reason)
        self._away[name] = reason[:500]

    def back(self, name: str) -> None:
        if self._away.pop(name, None) is not None:
            log.info("%s: available again", name)

    def status(self) -> dict[str, Any]:
        return {"status": "degraded" if self._away else "ok", "unavailable": dict(self._away)}
