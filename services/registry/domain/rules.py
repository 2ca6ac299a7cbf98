"""Pure registry rules: names, version statuses, alias history (rollback, "what served at T"), paging.

No I/O here: the store reads rows, these functions decide, the store writes the result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.registry.errors import Invalid
from shared.events import AliasAction, VersionStatus
from shared.feature_schema import FeatureSchema
from shared.profile import CategoricalProfile, ReferenceProfile

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")

ALLOWED_STATUS_CHANGES: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.PENDING: frozenset({VersionStatus.READY, VersionStatus.FAILED}),
    VersionStatus.READY: frozenset({VersionStatus.FAILED}),
    VersionStatus.FAILED: frozenset({VersionStatus.PENDING, VersionStatus.READY}),
}


def check_model_name(name: str) -> str:
    """``name`` if it can key a Kafka message and sit in a URL path; :class:`Invalid` otherwise."""
    if not MODEL_NAME_RE.match(name):
        raise Invalid(
            "model names are 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="name",
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a lowercase word (never a number, so it cannot be mistaken for a version)."""
    if not ALIAS_RE.match(alias):
        raise Invalid(
            "aliases are 1-100 lowercase letters, digits, '_' or '-', starting with a letter", field="alias"
        )
    return alias


def status_change_allowed(current: VersionStatus, new: VersionStatus) -> bool:
    return new in ALLOWED_STATUS_CHANGES[current]


@dataclass(frozen=True)
class AliasMove:
    """One line of an alias's history: where it pointed after ``action`` at ``changed_at``."""

    action: AliasAction
    version: int | None
    changed_at: datetime


def rollback_target(history: Sequence[AliasMove], servable: Iterable[int]) -> int | None:
    """The version a rollback returns the alias to, or None when there is nothing to go back to.

    History is an undo stack: set/move pushes, delete pushes "nowhere", a rollback pops. Rolling back twice
    after ``1 → 2 → 3`` gives 2 then 1, not a flip between 3 and 2. Versions no longer servable (deleted,
    failed) are skipped.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> moves = [AliasMove(AliasAction.SET, 1, t), AliasMove(AliasAction.MOVED, 2, t), AliasMove(AliasAction.MOVED, 3, t)]
    >>> rollback_target(moves, {1, 2, 3})
    2
    >>> rollback_target([*moves, AliasMove(AliasAction.ROLLED_BACK, 2, t)], {1, 2, 3})
    1
    """
    stack = _undo_stack(history)
    allowed = set(servable)
    if not stack:
        return None
    stack.pop()  # what the alias points at now
    while stack:
        candidate = stack.pop()
        if candidate is not None and candidate in allowed:
            return candidate
    return None


def _undo_stack(history: Sequence[AliasMove]) -> list[int | None]:
    stack: list[int | None] = []
    for move in history:
        if move.action == AliasAction.ROLLED_BACK:
            # the rollback popped entries down to move.version; replay that
            while stack and stack[-1] != move.version:
                stack.pop()
            if not stack:
                stack.append(move.version)
        else:
            stack.append(move.version)
    return stack


def version_at(history: Sequence[AliasMove], when: datetime) -> int | None:
    """The version the alias pointed at at ``when`` (None: it did not exist or was deleted then).

    ``history`` is in the order the moves happened.
    """
    current: int | None = None
    for move in history:
        if move.changed_at > when:
            break
        current = move.version
    return current


def webhook_backoff_seconds(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Delay before retry number ``attempt`` (1-based): doubling from ``base``, capped, so a dead endpoint
    is retried for minutes, not hammered."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


def webhook_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes, the value of ``X-Driftloop-Signature``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_page_token(position: Any) -> str:
    """An opaque cursor for the next page (keyset paging: stable under inserts, fast at any depth)."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_page_token(token: str, field: str = "page_token") -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("page_token is not one this registry issued; start again without it", field) from exc


def is_row_id(value: object) -> bool:
    """Whether ``value`` (from a page token) is an integer a database column can hold (signed 64-bit).

    >>> is_row_id(7), is_row_id(2**63), is_row_id("7"), is_row_id(True)
    (True, False, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def parse_tag_filters(tags: Sequence[str]) -> list[tuple[str, str | None]]:
    """``key=value`` (exact) or ``key`` (has the tag) filters from query parameters."""
    parsed: list[tuple[str, str | None]] = []
    for item in tags:
        key, sep, value = item.partition("=")
        if not key:
            raise Invalid(f"tag filter {item!r} needs a key: use key=value or key", field="tag")
        parsed.append((key, value if sep else None))
    return parsed


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of the fields whose values differ, sorted, for ``ModelUpdated`` and the audit log."""
    return sorted(k for k in after if before.get(k) != after.get(k))


PROFILE_KINDS: dict[str, frozenset[str]] = {
    "numeric": frozenset({"numeric"}),
    "integer": frozenset({"numeric"}),
    "categorical": frozenset({"categorical"}),
    "text": frozenset({"categorical"}),
    "boolean": frozenset({"numeric", "categorical"}),
}
"""The profile kinds each schema type may have: a boolean is stored as 1.0/0.0 and may be profiled either
way (numbers 0/1, or categories "0"/"1"/"true"/"false")."""

BOOLEAN_CATEGORIES = frozenset({"0", "1", "true", "false", "__other__"})


def check_profile_against_schema(schema: FeatureSchema, profile: ReferenceProfile) -> None:
    """Refuse (422, naming the feature) a reference profile whose kinds contradict the model's schema.

    A categorical profile of a numeric feature would make the monitor count numbers as categories in
    every window (and drift in all of them); features the schema does not declare are left alone.
    """
    for name, column in profile.features.items():
        spec = schema.spec(name)
        if spec is None:
            continue
        field = f"reference_profile.features.{name}"
        if column.kind not in PROFILE_KINDS[spec.type]:
            raise Invalid(
                f"the reference profile has feature {name!r} as {column.kind}, but the model's schema "
                f"declares it {spec.type}; rebuild the profile from the training data the schema describes",
                field=field,
            )
        if spec.type != "boolean":
            continue
        if isinstance(column, CategoricalProfile):
            odd = sorted(k for k in column.frequencies if k.lower() not in BOOLEAN_CATEGORIES)
        else:
            odd = sorted({str(v) for v in column.sketch if v not in (0.0, 1.0)})
        if odd:
            raise Invalid(
                f"the reference profile has boolean feature {name!r} taking {', '.join(odd[:5])}; a boolean "
                "profile holds only 0/1 (or true/false)",
                field=field,
            )
