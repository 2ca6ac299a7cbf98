"""Holds back the Kafka client's repeated complaints during an outage that its owner already reports once.

aiokafka logs every failed connection attempt, several lines a second while a broker is away. A component
that runs its Kafka client on a thread of its own (the SDK's shipper, a model server's watcher) registers
that thread with :func:`gate_this_thread`. On that thread only, the client's first warning or error still
shows and closes the gate; later info, warning and error records (one set per retry) are counted, not
logged, until the owner sees Kafka answer and opens it again. Records from any other thread (the app's own
Kafka clients), debug records and critical ones are never touched, and nothing is held back while the
owner sees Kafka working.

A service's process owns all of its Kafka clients, so it uses the simpler :func:`quiet_kafka_client`: one
of each repeated client line per five minutes, the next one saying how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time

CLIENT_LOGGER = "aiokafka"


class ClientLogGate:
    """The state of one registered thread: open (the client's complaints show) or closed (they are counted)."""

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.is_open = True
        self.held_back = 0

    def close(self) -> None:
        """Kafka is away and the owner says so: hold back the client's complaints on this thread."""
        self.is_open = False

    def open(self) -> int:
        """Kafka answers again: let complaints through; returns how many were held back since it closed."""
        held, self.held_back, self.is_open = self.held_back, 0, True
        return held

    def admit(self, record: logging.LogRecord) -> bool:
        if self.is_open:
            if record.levelno >= logging.WARNING:
                self.close()  # the first complaint shows; the ones repeating it until Kafka answers do not
            return True
        self.held_back += 1
        return False


_gates: dict[int, ClientLogGate] = {}
_install_lock = threading.Lock()


class _GateFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not logging.INFO <= record.levelno < logging.CRITICAL:
            return True
        gate = _gates.get(record.thread or 0)
        return gate is None or gate.admit(record)


_FILTER = _GateFilter()


def _install() -> None:
    """Put the filter on every aiokafka logger: a logger's filters see only records logged on it."""
    import aiokafka  # noqa: F401  # its modules create their loggers on import

    with _install_lock:
        names = [CLIENT_LOGGER] + [
            name for name in logging.root.manager.loggerDict if name.startswith(CLIENT_LOGGER + ".")
        ]
        for name in names:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


def gate_this_thread() -> ClientLogGate:
    """Register the calling thread (the one running the owner's Kafka client); undo with :func:`release`."""
    _install()
    gate = ClientLogGate(threading.get_ident())
    _gates[gate.thread_id] = gate
    return gate


def release(gate: ClientLogGate) -> None:
    """The owner's client stopped: its thread's records pass untouched again."""
    if _gates.get(gate.thread_id) is gate:
        del _gates[gate.thread_id]


# -- a service process: every Kafka client in it is the service's own -------------------------------------


class RepeatFilter(logging.Filter):
    """Lets through one of a run of identical library log lines per ``window_s`` (a Kafka client retrying
    a dead broker repeats itself several times a second); the next line it lets through says how many it
    held back. Records of other loggers than ``prefix`` pass untouched."""

    def __init__(self, prefix: str = "aiokafka", window_s: float = 300.0) -> None:
        super().__init__()
        self.prefix, self.window_s = prefix, window_s
        self._last: dict[tuple[str, int, str], float] = {}
        self._held: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -self.window_s) < self.window_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.window_s:g} s)"
        return True


def quiet_kafka_client(window_s: float = 300.0) -> None:
    """Install ``RepeatFilter`` on every root handler, so an outage costs a few Kafka client lines, not
    hundreds."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter(window_s=window_s))
