"""Who is looking: the token kept in a cookie, and the CSRF token every form carries.

The CSRF token is an HMAC of a random per-sign-in nonce under the session's registry token: no server
state, so any replica checks it, and a page from another site can neither read nor forge it.

>>> token = csrf_token("s3cret", "nonce-1")
>>> csrf_valid("s3cret", "nonce-1", token), csrf_valid("s3cret", "nonce-2", token), csrf_valid("", "n", "")
(True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

TOKEN_COOKIE = "driftloop_console_token"
NONCE_COOKIE = "driftloop_console_nonce"


def csrf_token(token: str, nonce: str) -> str:
    return hmac.new(token.encode(), b"driftloop-console-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_valid(token: str, nonce: str, given: str) -> bool:
    if not token or not nonce or not given:
        return False
    return hmac.compare_digest(csrf_token(token, nonce), given)


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their registry name and role (reader/writer/admin), and the CSRF token
    their forms carry (empty without a token)."""

    name: str
    role: str
    token: str = ""
    csrf: str = ""

    @property
    def may_write(self) -> bool:
        return self.role in ("writer", "admin")

    @property
    def signed_in(self) -> bool:
        return bool(self.token)
