"""A model server reacts only to model-events that can change what its alias serves."""

from __future__ import annotations

from services.serving.watcher import concerns
from shared.events import (
    AliasAction,
    AliasChanged,
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
