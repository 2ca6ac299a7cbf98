"""A model's answer type: read from a classifier's classes, and answers or text labels converted to it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from shared.answer_type import as_output_type, output_type_of


@pytest.mark.parametrize(
    ("classes", "expected"),
    [([0, 1], "int"), ([False, True], "bool"), (["no", "yes"], "str"), ([0.5, 1.5], "float")],
)
def test_the_answer_type_is_the_type_of_the_classes(classes: list[object], expected: str) -> None:
    model = DummyClassifier().fit(np.zeros((2, 1)), classes)
    assert output_type_of(model) == expected
    assert output_type_of(object()) is None  # not a classifier: nothing to say


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("0", "int", 0),
        ("-3", "int", -3),
        ("1.0", "int", 1),
        ("true", "bool", True),
        ("0", "bool", False),
        (np.int64(2), "str", "2"),
        ("2.5", "float", 2.5),
        (np.bool_(True), "bool", True),
    ],
)
def test_answers_and_text_labels_convert(value: object, kind: str, expected: object) -> None:
    converted = as_output_type(value, kind)  # type: ignore[arg-type]
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(("value", "kind"), [("yes", "int"), ("1.5", "int"), ("nan", "int"), ("2", "bool")])
def test_values_of_another_type_are_refused(value: str, kind: str) -> None:
    with pytest.raises(ValueError):
        as_output_type(value, kind)  # type: ignore[arg-type]
