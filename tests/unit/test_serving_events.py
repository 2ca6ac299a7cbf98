"""A model server reacts only to model-events that can change what its alias serves, and no bytes stop it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.serving.domain.events import concerns, read_event
from shared.codec import encode
from shared.events import (
    AliasAction,
    AliasChanged,
    Event,
    ModelCreated,
    ModelDeleted,
    ModelVersionStatusChanged,
    VersionStatus,
)


def test_only_events_about_this_model_and_alias_trigger_a_refresh() -> None:
    moved = AliasChanged(
        model_name="churn", alias="production", action=AliasAction.MOVED, version=2, changed_by="a"
    )
    assert concerns(moved, "churn", "production")
    assert not concerns(moved, "churn", "staging")
    assert not concerns(moved, "fraud", "production")
    status = ModelVersionStatusChanged(
        model_name="churn",
        version=2,
        status=VersionStatus.FAILED,
        previous_status=VersionStatus.READY,
        changed_by="a",
    )
    assert concerns(status, "churn", "production")
    assert concerns(ModelDeleted(model_name="churn", deleted_by="a"), "churn", "production")
    assert not concerns(ModelCreated(model_name="churn", created_by="a"), "churn", "production")


BOUNDARY_VALUES = [
    None,
    b"",
    b"\xff\xfe\x00not utf-8",
    b"null",
    b"[" * 100_000,  # nesting deeper than any parser's stack
    b'{"event_type": "alias_changed", "model_name": "' + b"x" * 2_000_000 + b'"}',
    b'{"event_type": "no_such_event", "model_name": "churn"}',
    b'{"event_type": "alias_changed", "model_name": "churn", "version": 1e999}',
    "\u2603 snow".encode(),
]


@pytest.mark.parametrize("value", BOUNDARY_VALUES, ids=range(len(BOUNDARY_VALUES)))
def test_a_record_that_is_not_an_event_is_named_not_raised(value: bytes | None) -> None:
    assert isinstance(read_event(value), str)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=4096), st.text(max_size=512).map(str.encode)))
def test_any_bytes_on_model_events_are_an_event_or_a_reason(value: bytes | None) -> None:
    assert isinstance(read_event(value), Event | str)


def test_a_model_event_is_read_back() -> None:
    moved = AliasChanged(
        model_name="churn", alias="production", action=AliasAction.MOVED, version=2, changed_by="a"
    )
    assert read_event(encode(moved)) == moved
