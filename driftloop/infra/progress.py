"""Feedback while a user waits: one line per step on stderr, with the seconds since the wait began.

Progress never goes to stdout, so what a command prints there (a status table, ``--json``) stays clean.
Anything that may keep a user waiting takes a ``Progress`` callback; :func:`on_stderr` is the default.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Progress = Callable[[str], None]


def on_stderr(started: float | None = None) -> Progress:
    """A ``Progress`` writing ``[  12.3s] message`` to stderr, counting from ``started`` (monotonic; now)."""
    began = time.monotonic() if started is None else started

    def say(message: str) -> None:
        print(f"[{time.monotonic() - began:5.1f}s] {message}", file=sys.stderr, flush=True)

    return say


def megabytes(size: float) -> str:
    """A byte count as a user reads it.

    >>> megabytes(123_456_789), megabytes(2_048)
    ('123.5 MB', '0.0 MB')
    """
    return f"{size / 1e6:.1f} MB"
