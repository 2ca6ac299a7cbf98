"""Which dependencies a service is waiting for, since when and why; each change of state is logged once.

Every service waits out a dependency that is away (Kafka, ClickHouse, the registry, S3, its database)
instead of exiting, and says so on its health endpoint. ``away`` and ``back`` are called on every attempt;
only a change of state is logged, so an outage of an hour is two log lines, not one per retry.

>>> deps = Dependencies(running=False)
>>> deps.status()["status"]
'starting'
>>> deps.running = True
>>> deps.away("kafka", "connection refused")
>>> deps.status()
{'status': 'degraded', 'unavailable': {'kafka': 'connection refused'}}
>>> deps.back("kafka")
>>> deps.status()
{'status': 'ok', 'unavailable': {}}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Away:
    """One dependency that does not answer: the last reason, and since when (wall clock)."""

    reason: str
    since: float


class Dependencies:
    """The service's dependencies that are away; ``on_change`` gets how many are, after each change."""

    def __init__(self, *, running: bool = True, on_change: Callable[[int], None] | None = None) -> None:
        self._away: dict[str, Away] = {}
        self._on_change = on_change
        self.running = running
        """False while the service starts (health says ``starting``)."""

    def away(self, name: str, reason: str) -> None:
        found = self._away.get(name)
        if found is None:
            log.warning("%s is unavailable (%s); waiting for it, retrying with backoff", name, reason)
            self._away[name] = Away(reason[:500], time.time())
            if self._on_change is not None:
                self._on_change(len(self._away))
        else:
            found.reason = reason[:500]

    def back(self, name: str) -> None:
        found = self._away.pop(name, None)
        if found is not None:
            log.info("%s is available again after %.0f s", name, time.time() - found.since)
            if self._on_change is not None:
                self._on_change(len(self._away))

    def waiting(self) -> dict[str, dict[str, Any]]:
        """Each dependency away, with ``since`` and ``error``."""
        return {name: {"since": a.since, "error": a.reason} for name, a in self._away.items()}

    def status(self) -> dict[str, Any]:
        """``ok``, ``starting`` or ``degraded``, with the reason for each dependency away."""
        state = "degraded" if self._away else ("ok" if self.running else "starting")
        return {"status": state, "unavailable": {name: a.reason for name, a in self._away.items()}}
