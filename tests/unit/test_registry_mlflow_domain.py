"""MLflow's filter strings, stages and artifact paths as the registry reads them (pure)."""

from __future__ import annotations

import pytest

from services.registry.domain.mlflow_filter import parse_filter
from services.registry.domain.mlflow_mapping import (
    artifact_path,
    current_stage,
    mlflow_error,
    parse_version_artifact_path,
    stage_alias,
    version_number,
)
from services.registry.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated


def test_supported_filters_become_one_indexed_search() -> None:
    parsed = parse_filter(
        "name = 'churn' AND tags.`team name` = 'risk and more' and run_id = 'abc' AND tags.env=\"prod\"",
        versions=True,
    )
    assert parsed.name == "churn"
    assert parsed.tags == ["team name=risk and more", "mlflow.run_id=abc", "env=prod"]
    assert parse_filter("name LIKE 'churn\\_%'", versions=False).name_prefix == "churn_"
    assert parse_filter("name = 'a' AND version_number = 3", versions=True).version == 3
    assert parse_filter("  ", versions=True) == parse_filter(None, versions=True)


@pytest.mark.parametrize(
    ("text", "versions", "names"),
    [
        ("name LIKE '%churn'", False, "prefix patterns"),
        ("name LIKE 'ch_rn%'", False, "prefix patterns"),
        ("tags.team != 'risk'", True, "'='"),
        ("run_id = 'abc'", False, "run_id"),  # a model has no run
        ("source_path = 's3://x'", True, "source_path"),
        ("name = 'a' OR name = 'b'", True, "cannot parse"),
        ("tags.`a=b` = 'c'", True, "contains '='"),
        ("name = 'a' AND version_number = x", True, "cannot parse"),
        ("x" * 10_001, True, "10,000"),
    ],
)
def test_unsupported_filters_are_refused_naming_the_clause(text: str, versions: bool, names: str) -> None:
    with pytest.raises(Invalid, match=names) as refused:
        parse_filter(text, versions=versions)
    assert refused.value.field == "filter"


def test_stages_are_aliases() -> None:
    assert [stage_alias(s) for s in ("Production", "staging", "Archived", "None")] == [
        "production",
        "staging",
        None,
        None,
    ]
    with pytest.raises(Invalid, match="stage 'Live'"):
        stage_alias("Live")
    assert current_stage(["staging", "production"]) == "Production"
    assert current_stage(["candidate"]) == "None"


@pytest.mark.parametrize(
    "path", ["", "../x", "a/../../x", "a//b", "./a", "a\\b", "a/\x00", "/" * 3, "x" * 1001]
)
def test_artifact_paths_that_could_escape_are_refused(path: str) -> None:
    with pytest.raises(Invalid):
        artifact_path(path)


def test_version_paths_and_numbers() -> None:
    assert parse_version_artifact_path("driftloop-versions/churn/3/sub/MLmodel") == (
        "churn",
        3,
        "sub/MLmodel",
    )
    assert parse_version_artifact_path("driftloop-versions/churn/3") == ("churn", 3, "")
    assert parse_version_artifact_path("0/runs/x") is None
    for bad in ("0", "-1", "1.5", "x", str(2**63)):
        with pytest.raises(Invalid):
            version_number(bad)


def test_registry_errors_take_mlflows_codes_and_statuses() -> None:
    assert mlflow_error(NotFound("gone"))[0] == 404
    assert mlflow_error(Invalid("bad", field="x")) == (
        400,
        {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad (field: x)"},
    )
    assert mlflow_error(Conflict("no"))[1]["error_code"] == "INVALID_STATE"
    assert mlflow_error(Forbidden("no"))[1]["error_code"] == "PERMISSION_DENIED"
    assert mlflow_error(Unauthenticated("who"))[:1] == (401,)
