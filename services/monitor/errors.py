"""The monitor's one error base: every exception the monitor defines subclasses ``MonitorError``."""

from __future__ import annotations


class MonitorError(Exception):
    """Something the monitor refuses or cannot do."""


class DetectorParameterError(MonitorError, ValueError):
    """A drift detector was built with a parameter it cannot work with (raised by its constructor)."""
