"""The web console's one error base and the few named errors it raises."""

from __future__ import annotations


class ConsoleError(RuntimeError):
    """Something the console cannot do; the message names the setting or dependency to check."""


class NotSignedIn(ConsoleError):
    """The registry wants a token for this (401): the console sends the user to its sign-in page."""


class Forbidden(ConsoleError):
    """The token's role is too low for this (403), or the form's CSRF token is wrong."""


class NotFound(ConsoleError):
    """No such model, version or drift event (404)."""


class RegistryUnavailable(ConsoleError):
    """The registry did not answer; pages say so and try again on their next refresh."""


class Refused(ConsoleError):
    """The registry refused a write (409, 422): its message is shown to the user as it is."""
