"""The scaling advisor's one error base."""

from __future__ import annotations


class AdvisorError(RuntimeError):
    """Something the advisor cannot do; the message names the setting or dependency to check."""
