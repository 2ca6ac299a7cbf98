"""A decorator that times a model call and logs it as a prediction, for sync and async model functions.

By default the first positional argument is the features mapping and the return value is the prediction;
``features=`` (``(args, kwargs) -> mapping``) and ``output=`` (``result -> prediction`` or
``result -> (prediction, probabilities)``) adapt other signatures. Logging trouble never breaks the call.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("shared.sdk")


class PredictionLogger(Protocol):
    """Anything that logs predictions like ``Driftloop.log_prediction`` (timed calls, model servers)."""

    def log_prediction(
        self,
        model_name: str,
        model_version: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        prediction_id: str | None = None,
        probabilities: Mapping[Any, float] | None = None,
        latency_ms: float | None = None,
    ) -> str: ...


Timed = Callable[[Callable[..., Any]], Callable[..., Any]]


def _default_features(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    if args and isinstance(args[0], Mapping):
        return args[0]
    if isinstance(kwargs.get("features"), Mapping):
        return kwargs["features"]
    raise TypeError("pass features= to timed(): the first argument of the model call is not a mapping")


def _split_output(result: Any) -> tuple[Any, Mapping[Any, float] | None]:
    if (
        isinstance(result, tuple)
        and len(result) == 2
        and (result[1] is None or isinstance(result[1], Mapping))
    ):
        return result[0], result[1]
    return result, None


def timed_decorator(
    producer: PredictionLogger,
    model_name: str,
    model_version: str,
    *,
    features: Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, Any]] | None = None,
    output: Callable[[Any], Any] | None = None,
) -> Timed:
    """Wrap ``fn`` so each call is timed and logged; the wrapped function returns exactly what ``fn`` returns."""
    get_features = features or _default_features

    def record(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, started: float) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            prediction, probabilities = _split_output(output(result) if output else result)
            producer.log_prediction(
                model_name,
                model_version,
                get_features(args, kwargs),
                prediction,
                probabilities=probabilities,
                latency_ms=latency_ms,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            log.warning("Driftloop SDK: could not log a call of %s: %s", model_name, exc)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                result = await fn(*args, **kwargs)
                record(args, kwargs, result, started)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            record(args, kwargs, result, started)
            return result

        return wrapper

    return decorate
