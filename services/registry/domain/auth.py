"""Who is calling and what they may do: bearer tokens mapped to roles (reader < writer < admin)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum

from services.registry.errors import Forbidden, Invalid, Unauthenticated


class Role(IntEnum):
    """Ordered, so "may write" is ``role >= Role.WRITER``."""

    READER = 1
    WRITER = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def role_name(self) -> str:
        return self.role.name.lower()


ANONYMOUS_READER = Principal("anonymous", Role.READER)
ANONYMOUS_ADMIN = Principal("anonymous", Role.ADMIN)


def parse_tokens(tokens: dict[str, str]) -> dict[str, Principal]:
    """``{"<token>": "<name>:<role>"}`` from settings into principals; a bad entry stops start-up."""
    principals: dict[str, Principal] = {}
    for token, spec in tokens.items():
        name, _, role = spec.rpartition(":")
        try:
            principals[token] = Principal(name or "unnamed", Role[role.upper()])
        except KeyError:
            raise Invalid(
                f"registry token for {name!r} has role {role!r}; use reader, writer or admin",
                field="registry_tokens",
            ) from None
    return principals


def authenticate(
    authorization: str | None,
    principals: dict[str, Principal],
    *,
    open_reads: bool,
    anonymous_writes: bool,
) -> Principal:
    """The caller behind an ``Authorization`` header; anonymous callers get what the settings allow."""
    if not authorization:
        if anonymous_writes:
            return ANONYMOUS_ADMIN
        if open_reads:
            return ANONYMOUS_READER
        raise Unauthenticated("this registry needs a bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("use 'Authorization: Bearer <token>'", field="authorization")
    for known, principal in principals.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            return principal
    raise Unauthenticated("unknown token; ask an admin for one", field="authorization")


def require(principal: Principal, role: Role) -> Principal:
    """``principal`` if its role is at least ``role``; otherwise :class:`Unauthenticated` (401) for a caller
    without a token (a token would help), :class:`Forbidden` (403) for a token whose role is too low."""
    if principal.role < role and principal is ANONYMOUS_READER:
        raise Unauthenticated(
            f"this needs the {role.name.lower()} role: send 'Authorization: Bearer <token>'",
            field="authorization",
        )
    if principal.role < role:
        raise Forbidden(
            f"{principal.name} is a {principal.role_name}; this needs the {role.name.lower()} role",
            field="authorization",
        )
    return principal
