"""Who a request says it is, read the ways the ClickHouse server reads it, checked against the one configured user.

Credentials come as HTTP basic auth, as ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or as ``user``/
``password`` URL parameters; like ClickHouse, mixing two of these ways is an error, and none means ``default``
with an empty password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from driftloop.clickhouse_server.errors import AUTHENTICATION_FAILED, ClickHouseError

#: Where the server process reads its user and password (the names clients' settings use, so a shell that sets
#: them configures both sides); never on the command line, where ``ps`` shows it to every local user.
USER_ENV = "DRIFTLOOP_CLICKHOUSE_USER"
PASSWORD_ENV = "DRIFTLOOP_CLICKHOUSE_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


def configured(environ: Mapping[str, str] | None = None) -> Credentials:
    """The user the server accepts: from the environment, ``default`` with an empty password when unset."""
    env = os.environ if environ is None else environ
    return Credentials(env.get(USER_ENV) or "default", env.get(PASSWORD_ENV, ""))


def _failed(message: str) -> ClickHouseError:
    return ClickHouseError(
        AUTHENTICATION_FAILED,
        f"Code: {AUTHENTICATION_FAILED}. DB::Exception: {message}. (AUTHENTICATION_FAILED)",
    )


def presented(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials:
    """The credentials a request carries; raises code 516 for an unreadable or ambiguous ``Authorization``."""
    authorization = headers.get("Authorization")
    in_headers = "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers
    in_params = "user" in params or "password" in params
    if sum((authorization is not None, in_headers, in_params)) > 1:
        raise _failed(
            "Invalid authentication: it is not allowed to use the Authorization header, X-ClickHouse-User/Key "
            "headers and user/password parameters together"
        )
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _failed(f"Invalid authentication: {scheme} authentication is not supported by this server")
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise _failed("Invalid authentication: the Authorization header is not valid basic auth")
        return Credentials(user or "default", password)
    if in_headers:
        return Credentials(headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key", ""))
    return Credentials(params.get("user") or "default", params.get("password", ""))


def check(expected: Credentials, given: Credentials) -> None:
    """Raise code 516 (HTTP 403) unless ``given`` names the configured user with its password."""
    same_user = hmac.compare_digest(given.user.encode(), expected.user.encode())
    same_password = hmac.compare_digest(given.password.encode(), expected.password.encode())
    if not (same_user and same_password):
        raise _failed(
            f"{given.user}: Authentication failed: password is incorrect, or there is no user with such name"
        )
