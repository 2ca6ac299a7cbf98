"""A prediction's features are checked against its model's schema, every problem named, nothing raised."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import shared.feature_schema as feature_schema
from shared.feature_schema import (
    REJECTING_ISSUES,
    FeatureSchema,
    FeatureSpec,
    IssueKind,
    check_features,
    check_value,
    compile_check,
    count_issues,
    rejecting,
)


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(
        features=[
            FeatureSpec(name="amount", type="numeric", nullable=False, min=0.0, max=10_000.0),
            FeatureSpec(name="items", type="integer", min=1),
            FeatureSpec(name="plan", type="categorical", categories=["free", "pro"]),
            FeatureSpec(name="country", type="categorical"),
            FeatureSpec(name="is_new", type="boolean"),
            FeatureSpec(name="note", type="text"),
        ]
    )


def kinds(issues: list[feature_schema.FeatureIssue]) -> dict[str, str]:
    return {i.feature: i.kind.value for i in issues}


def test_a_valid_prediction_has_no_issues(schema: FeatureSchema) -> None:
    features = {"amount": 12.5, "items": 3, "plan": "pro", "country": "FR", "is_new": True, "note": "hi"}
    assert check_features(schema, features) == []


def test_missing_values_are_issues_only_for_required_features(schema: FeatureSchema) -> None:
    assert kinds(check_features(schema, {"items": None})) == {"amount": "missing"}
    assert kinds(check_features(schema, {"amount": None})) == {"amount": "missing"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("amount", "12"),
        ("amount", True),
        ("amount", float("nan")),
        ("items", 2.5),
        ("plan", 1),
        ("is_new", 1),
        ("note", 3.0),
    ],
)
def test_wrong_types_are_type_errors(schema: FeatureSchema, name: str, value: object) -> None:
    features = {"amount": 1.0, name: value}
    assert kinds(check_features(schema, features)) == {name: "type_error"}  # type: ignore[arg-type]


def test_integral_floats_are_integers_and_ints_are_numeric(schema: FeatureSchema) -> None:
    assert check_features(schema, {"amount": 3, "items": 4.0}) == []


def test_range_categories_and_unknown_features_are_named(schema: FeatureSchema) -> None:
    issues = check_features(schema, {"amount": -1.0, "items": 0, "plan": "gold", "extra": 1})
    assert kinds(issues) == {
        "amount": "out_of_range",
        "items": "out_of_range",
        "plan": "unseen_category",
        "extra": "unknown_feature",
    }
    assert "minimum" in issues[0].detail


def test_open_categorical_accepts_any_string(schema: FeatureSchema) -> None:
    spec = schema.spec("country")
    assert spec is not None and check_value(spec, "never-seen") is None


def test_issues_are_counted_per_feature_and_kind(schema: FeatureSchema) -> None:
    issues = check_features(schema, {"plan": "gold"}) + check_features(schema, {"plan": "x"})
    assert count_issues(issues) == {"amount": {"missing": 2}, "plan": {"unseen_category": 2}}


@pytest.mark.parametrize(
    "bad",
    [
        {"features": [{"name": "a", "type": "numeric"}, {"name": "a", "type": "text"}]},
        {"features": [{"name": "a", "type": "numeric", "min": 2, "max": 1}]},
        {"features": [{"name": "a", "type": "text", "min": 0}]},
        {"features": [{"name": "a", "type": "numeric", "categories": ["x"]}]},
        {"features": [{"name": "a", "type": "float"}]},
    ],
)
def test_inconsistent_schemas_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FeatureSchema.model_validate(bad)


def test_schema_round_trips_through_json(schema: FeatureSchema) -> None:
    assert FeatureSchema.model_validate_json(schema.model_dump_json()) == schema
    assert IssueKind("unseen_category") is IssueKind.UNSEEN_CATEGORY


def test_an_empty_schema_is_no_schema_and_checks_nothing() -> None:
    assert check_features(FeatureSchema(), {"anything": "at all", "n": 1e9}) == []


def test_refusing_issue_kinds_are_found_by_enum_or_by_plain_string(schema: FeatureSchema) -> None:
    issues = check_features(schema, {"amount": "12", "items": 0, "zip": "123"})
    assert [(i.feature, i.kind.value) for i in rejecting(issues)] == [
        ("amount", "type_error"),
        ("zip", "unknown_feature"),
    ]
    # ingest looks kinds up as strings: the one mapping answers both ways
    assert REJECTING_ISSUES["type_error"] == REJECTING_ISSUES[IssueKind.TYPE_ERROR] == "feature_type_error"
    assert "out_of_range" not in REJECTING_ISSUES and "missing" not in REJECTING_ISSUES


def test_issues_are_described_naming_each_feature_once(schema: FeatureSchema) -> None:
    unknown = {f"extra{i}": 1 for i in range(25)}
    text = feature_schema.describe_issues(feature_schema.check_features(schema, unknown))
    assert text.count("not in the model's schema") == 1
    assert "extra0, extra1" in text and text.endswith("and 5 more")
    assert text.startswith("amount: value is required (not nullable)")


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["free", "pro", "gold", "", "1"]),
)
SPECS = [
    FeatureSpec(name="n", type="numeric", nullable=False),
    FeatureSpec(name="r", type="numeric", min=-1.5, max=10),
    FeatureSpec(name="i", type="integer", nullable=False, min=0, max=130),
    FeatureSpec(name="b", type="boolean"),
    FeatureSpec(name="c", type="categorical", nullable=False, categories=["free", "pro"]),
    FeatureSpec(name="o", type="categorical"),
    FeatureSpec(name="t", type="text", nullable=False),
]


FITTING = {"n": 1.0, "r": 0.5, "i": 3, "b": True, "c": "pro", "o": "x", "t": "hello"}


EDGES = [
    None,
    True,
    False,
    0,
    -1,
    131,
    1.5,
    -1.6,
    10.5,
    math.nan,
    math.inf,
    -math.inf,
    "free",
    "gold",
    "",
    10**20,
]


@pytest.mark.parametrize("name", [*FITTING, "zip"])
@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_the_compiled_check_faults_each_edge_as_the_full_one(name: str, value: object) -> None:
    schema = FeatureSchema(features=SPECS)
    features = {**FITTING, name: value}
    assert compile_check(schema)(features) == check_features(schema, features)  # type: ignore[arg-type]


@given(st.sampled_from([*FITTING, "zip"]), ODD_VALUES)
def test_the_compiled_check_answers_exactly_as_the_full_one(name: str, value: object) -> None:
    """The validator's quick check may only be quicker: any value the full check faults (NaN, infinity,
    a boolean for a number, 1.5 for an integer, an unseen category, an unknown name) it faults the same,
    also when every other value of the prediction fits."""
    schema = FeatureSchema(features=SPECS)
    check = compile_check(schema)
    assert check(FITTING) == []
    features = {**FITTING, name: value}
    assert check(features) == check_features(schema, features)  # type: ignore[arg-type]
