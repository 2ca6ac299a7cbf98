"""The JSON type a model answers with, and converting an answer to it, so every version answers alike.

A classifier answers with one of its ``classes_``; their type (``int``, ``bool``, ``float``, ``str``) is what
``/predict`` returns and what apps compare with. The trainer records it on every version it registers (tag
``output_type``) and trains on labels converted to it; the model servers convert answers to the recorded type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

OutputType = Literal["bool", "int", "float", "str"]
OUTPUT_TYPES: tuple[OutputType, ...] = ("bool", "int", "float", "str")
OUTPUT_TYPE_TAG = "output_type"
"""The tag (on a model or a version) that records the type its predictions answer with."""


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def type_of(value: Any) -> OutputType | None:
    """The output type of one answer, or None when it is none of them.

    Examples
    --------
    >>> type_of(True), type_of(np.int64(3)), type_of("no"), type_of(None)
    ('bool', 'int', 'str', None)
    """
    value = plain(value)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, kind):
            return name  # type: ignore[return-value]
    return None


def output_type_of(estimator: Any) -> OutputType | None:
    """The type of the classes a fitted classifier answers with, or None when it has no ``classes_``."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) == 0:
        return None
    return type_of(classes[0])


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "1.0"):
        return True
    if lowered in ("0", "false", "0.0"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _as_float(value: Any) -> float:
    return float(value)


def _as_str(value: Any) -> str:
    return str(value)


_CONVERT: dict[str, Callable[[Any], bool | int | float | str]] = {
    "bool": _as_bool,
    "int": _as_int,
    "float": _as_float,
    "str": _as_str,
}


def as_output_type(value: Any, output_type: OutputType) -> bool | int | float | str:
    """``value`` (an answer, or a label read back as text) as ``output_type``; ValueError when it is not one.

    Examples
    --------
    >>> as_output_type("0", "int"), as_output_type("true", "bool"), as_output_type(np.int64(1), "str")
    (0, True, '1')
    >>> as_output_type("yes", "int")
    Traceback (most recent call last):
    ...
    ValueError: could not convert string to float: 'yes'
    """
    return _CONVERT[output_type](plain(value))
