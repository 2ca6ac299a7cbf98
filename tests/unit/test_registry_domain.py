"""Pure registry rules: alias undo history, time travel, tokens and roles, webhook signatures."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

import services.registry.domain.rules as domain
from services.registry.domain.auth import Role, authenticate, parse_tokens, require
from services.registry.domain.rules import AliasMove, rollback_target, version_at
from services.registry.errors import Forbidden, Invalid, Unauthenticated
from shared.events import AliasAction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def moves(*steps: tuple[AliasAction, int | None]) -> list[AliasMove]:
    return [AliasMove(action, version, T0 + timedelta(hours=i)) for i, (action, version) in enumerate(steps)]


def test_rollback_walks_back_the_undo_stack_and_skips_unservable_versions() -> None:
    history = moves((AliasAction.SET, 1), (AliasAction.MOVED, 2), (AliasAction.MOVED, 3))
    assert rollback_target(history, {1, 2, 3}) == 2
    assert rollback_target(history, {1, 3}) == 1
    assert rollback_target(history[:1], {1}) is None
    after_delete = [*history, *moves((AliasAction.DELETED, None))]
    assert rollback_target(after_delete, {1, 2, 3}) == 3


def test_version_at_answers_what_the_alias_pointed_at() -> None:
    history = moves((AliasAction.SET, 1), (AliasAction.MOVED, 2), (AliasAction.DELETED, None))
    assert version_at(history, T0 - timedelta(seconds=1)) is None
    assert version_at(history, T0 + timedelta(minutes=30)) == 1
    assert version_at(history, T0 + timedelta(hours=1)) == 2
    assert version_at(history, T0 + timedelta(hours=5)) is None


def test_webhook_signature_is_hmac_sha256_of_the_body_and_backoff_doubles_to_a_cap() -> None:
    body = b'{"event_type":"alias_changed"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert domain.webhook_signature("s3cret", body) == f"sha256={expected}"
    assert [domain.webhook_backoff_seconds(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert domain.webhook_backoff_seconds(50) == 300.0


@pytest.mark.parametrize("name", ["", "has space", "-lead", "x" * 201, "a/b"])
def test_bad_model_names_are_refused_naming_the_field(name: str) -> None:
    with pytest.raises(Invalid) as caught:
        domain.check_model_name(name)
    assert caught.value.field == "name"


def test_aliases_are_words_never_numbers() -> None:
    assert domain.check_alias("production") == "production"
    with pytest.raises(Invalid):
        domain.check_alias("3")


def test_page_tokens_round_trip_and_foreign_tokens_are_invalid() -> None:
    assert domain.decode_page_token(domain.encode_page_token(["m", 3])) == ["m", 3]
    with pytest.raises(Invalid):
        domain.decode_page_token("not a token!")


def test_tokens_map_to_roles_and_roles_are_ordered() -> None:
    principals = parse_tokens({"t1": "rita:reader", "t2": "ci:writer"})
    user = authenticate("Bearer t2", principals, open_reads=True, anonymous_writes=False)
    assert user.name == "ci" and require(user, Role.WRITER) is user
    reader = authenticate("Bearer t1", principals, open_reads=True, anonymous_writes=False)
    with pytest.raises(Forbidden):
        require(reader, Role.WRITER)
    assert authenticate(None, principals, open_reads=True, anonymous_writes=False).role is Role.READER
    assert authenticate(None, principals, open_reads=False, anonymous_writes=True).role is Role.ADMIN
    with pytest.raises(Unauthenticated):
        authenticate(None, principals, open_reads=False, anonymous_writes=False)
    with pytest.raises(Unauthenticated):
        authenticate("Bearer nope", principals, open_reads=True, anonymous_writes=False)
    with pytest.raises(Invalid):
        parse_tokens({"t": "x:superuser"})


def test_a_profile_whose_kinds_contradict_the_schema_is_refused_naming_the_feature() -> None:
    from services.registry.domain.rules import check_profile_against_schema
    from services.registry.errors import Invalid
    from shared.feature_schema import FeatureSchema, FeatureSpec
    from shared.profile import build_profile

    schema = FeatureSchema(
        features=[
            FeatureSpec(name="age", type="integer"),
            FeatureSpec(name="plan", type="categorical"),
            FeatureSpec(name="flag", type="boolean"),
        ]
    )
    fits: dict[str, list[object]] = {
        "age": [20, 30, 40],
        "plan": ["a", "b", "a"],
        "flag": [True, False, True],
    }
    check_profile_against_schema(schema, build_profile(fits))
    check_profile_against_schema(schema, build_profile({**fits, "flag": [1.0, 0.0, 1.0]}))
    check_profile_against_schema(schema, build_profile({**fits, "extra": ["x", "y", "z"]}))
    wrong: list[tuple[str, list[object]]] = [
        ("age", ["20", "30", "40"]),
        ("plan", [1.0, 2.0, 3.0]),
        ("flag", [0.0, 0.5, 1.0]),
        ("flag", ["yes", "no", "yes"]),
    ]
    for field, values in wrong:
        with pytest.raises(Invalid) as refused:
            check_profile_against_schema(schema, build_profile({**fits, field: values}))
        assert refused.value.field == f"reference_profile.features.{field}" and repr(field) in str(
            refused.value
        )
