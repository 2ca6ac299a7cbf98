"""Which rows a model server refuses to serve, and the warning for a model it cannot check at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.feature_schema import REJECTING_ISSUES, FeatureIssue, FeatureSchema, IssueKind, check_features

NO_SCHEMA_WARNING = (
    "model {name!r} has no feature schema in the registry: /predict cannot check its inputs and the stream "
    "validator cannot check its predictions' features; register the model's feature_schema"
)


def refusals(schema: FeatureSchema, row: Mapping[str, Any]) -> list[FeatureIssue]:
    """Why ``row`` may not be served by a model with ``schema`` (empty: serve it).

    The issues ingest would dead-letter the served prediction for (``shared.feature_schema.REJECTING_ISSUES``:
    wrong types, unknown features), plus what the model cannot be called without: a required feature
    missing, or none of the schema's features at all. Out-of-range values and unseen categories are drift,
    served and measured by the monitor. An empty schema checks nothing (``/status`` warns about it).

    Examples
    --------
    >>> from shared.feature_schema import FeatureSpec
    >>> schema = FeatureSchema(features=[FeatureSpec(name="age", type="integer")])
    >>> [(i.feature, i.kind.value) for i in refusals(schema, {"agee": 41})]
    [('age', 'missing'), ('agee', 'unknown_feature')]
    >>> refusals(schema, {"age": 41}), refusals(FeatureSchema(), {"anything": 1})
    ([], [])
    """
    if not schema.features:
        return []
    issues = check_features(schema, row)
    refused = [i for i in issues if i.kind is IssueKind.MISSING or i.kind in REJECTING_ISSUES]
    if not any(row.get(name) is not None for name in schema.names):
        named = {i.feature for i in refused}
        refused[:0] = [
            FeatureIssue(feature=name, kind=IssueKind.MISSING, detail="none of the model's features was sent")
            for name in schema.names
            if name not in named
        ]
    return refused
