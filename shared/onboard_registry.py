"""Registers a model with what the loop needs (schema, profile, output type, recipe) over the registry's API.

The inference is :mod:`shared.onboarding` (pure); this module only talks to the registry. It is what
``driftloop models register|set`` run, and what Python callers use with a DataFrame::

    register_model("churn", model, data=frame, target="churned", promote=True)
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from shared.answer_type import OUTPUT_TYPE_TAG
from shared.drift_thresholds import DriftThresholds
from shared.feature_schema import FeatureSchema
from shared.onboarding import OnboardingError, blind_spots, onboard
from shared.registry_auth import registry_headers
from shared.settings import Settings

PRODUCTION = "production"


class RegistryRefused(RuntimeError):
    """The registry answered with an error; ``status``, ``message`` and ``field`` are its answer."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"error {status}: {message}" + (f" (field: {field})" if field else ""))
        self.status, self.message, self.field = status, message, field


@dataclass(frozen=True)
class Registered:
    """The version registered, the alias it was promoted to (if any), and the warnings a user must read."""

    name: str
    version: int
    artifact_sha256: str
    alias: str | None = None
    output_type: str | None = None
    features: int = 0
    profile_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    feature_importance: dict[str, float] = field(default_factory=dict)
    """Permutation importance measured on the data given (empty without data)."""


def registry_client(settings: Settings | None = None) -> httpx.Client:
    """An HTTP client for the configured registry, with its token (or the local admin token)."""
    settings = settings or Settings()
    token = settings.registry_token.get_secret_value()
    headers = registry_headers(token)
    return httpx.Client(base_url=settings.registry_url.rstrip("/"), headers=headers, timeout=60)


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            raise RegistryRefused(response.status_code, str(error["message"]), error.get("field"))
        except (ValueError, KeyError, TypeError):
            raise RegistryRefused(response.status_code, response.text[:500]) from None
    return response.json() if response.content else None


def read_data(path: Path) -> pd.DataFrame:
    """A training file as a DataFrame: Parquet by its ``.parquet``/``.pq`` suffix, CSV otherwise."""
    if not path.is_file():
        raise OnboardingError(f"no training file at {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def register_model(
    name: str,
    model: Any,
    *,
    data: pd.DataFrame | None = None,
    target: str | None = None,
    artifact: bytes | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    description: str = "",
    promote: bool = False,
    registry: httpx.Client | None = None,
    warn: Callable[[str], None] | None = None,
) -> Registered:
    """Register a new version of ``name`` (created if needed); with ``data`` and ``target``, everything the
    loop needs is inferred from them and stored with it; with ``promote``, ``production`` points at it.

    ``model`` is the fitted estimator (joblib-dumped as the artifact unless ``artifact`` gives its bytes).
    Without data the version is registered but the loop may be blind; each reason goes to ``warn`` and into
    ``Registered.warnings``. A model that fails on its own data, or whose predictions change type from the
    one recorded for the model, raises :class:`OnboardingError` and nothing is registered.
    """
    if (data is None) != (target is None):
        raise OnboardingError("pass both data and target (--data TRAIN_FILE --target COLUMN), or neither")
    onboarding = onboard(model, data, target, metrics) if data is not None and target is not None else None
    own = registry is None
    http = registry or registry_client()
    try:
        existing = http.get(f"/models/{name}")
        current = None if existing.status_code == 404 else _check(existing)
        if onboarding is not None:
            recorded = (current or {}).get("tags", {}).get(OUTPUT_TYPE_TAG)
            if recorded is not None and recorded != onboarding.output_type:
                raise OnboardingError(
                    f"this model answers {onboarding.output_type} but {name} records {OUTPUT_TYPE_TAG}="
                    f"{recorded}: every version must answer with the same type"
                )
            entry = {
                "task_type": onboarding.task_type,
                "feature_schema": onboarding.feature_schema.model_dump(mode="json"),
            }
            if current is None:
                _check(
                    http.post(
                        "/models",
                        json={
                            "name": name,
                            **entry,
                            "tags": {OUTPUT_TYPE_TAG: onboarding.output_type},
                            "training_recipe": onboarding.training_recipe,
                        },
                    )
                )
            else:
                tags = {**current["tags"], OUTPUT_TYPE_TAG: onboarding.output_type}
                if not current["training_recipe"]:  # a recipe the user wrote is kept
                    entry["training_recipe"] = onboarding.training_recipe
                _check(http.patch(f"/models/{name}", json={**entry, "tags": tags}))
            current = _check(http.get(f"/models/{name}"))
        elif current is None:
            _check(http.post("/models", json={"name": name}))
            current = _check(http.get(f"/models/{name}"))
        warnings = blind_spots(
            FeatureSchema.model_validate(current["feature_schema"]), onboarding is not None
        )
        for warning in warnings:
            (warn or (lambda _: None))(warning)
        meta: dict[str, Any] = {"description": description, "params": dict(params or {})}
        if onboarding is not None:
            meta["metrics"] = onboarding.metrics
            meta["reference_profile"] = onboarding.reference_profile.model_dump(mode="json")
            meta["tags"] = {OUTPUT_TYPE_TAG: onboarding.output_type}
        elif metrics:
            meta["metrics"] = dict(metrics)
        version = _check(
            http.post(
                f"/models/{name}/versions/upload",
                files={"artifact": ("model.joblib", artifact or _dump(model), "application/octet-stream")},
                data={"metadata": json.dumps(meta)},
            )
        )
        alias = None
        if promote:
            reason = "registered with --promote"
            _check(
                http.put(
                    f"/models/{name}/aliases/{PRODUCTION}",
                    json={"version": version["version"], "reason": reason},
                )
            )
            alias = PRODUCTION
    finally:
        if own:
            http.close()
    return Registered(
        name=name,
        version=int(version["version"]),
        artifact_sha256=str(version["artifact_sha256"]),
        alias=alias,
        output_type=onboarding.output_type if onboarding is not None else None,
        features=len(current["feature_schema"]["features"]),
        profile_rows=onboarding.reference_profile.rows if onboarding is not None else 0,
        warnings=warnings,
        feature_importance=dict(onboarding.reference_profile.feature_importance) if onboarding else {},
    )


def _dump(model: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def set_model(
    name: str,
    *,
    schema: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    registry: httpx.Client | None = None,
) -> dict[str, Any]:
    """Replace the feature schema, training recipe and/or drift thresholds of ``name``; returns the model.

    Schema and thresholds are validated here first, so a typo is named before the registry is asked.
    """
    changes: dict[str, Any] = {}
    try:
        if schema is not None:
            changes["feature_schema"] = FeatureSchema.model_validate(schema).model_dump(mode="json")
        if thresholds is not None:
            changes["drift_thresholds"] = DriftThresholds.model_validate(thresholds).model_dump(mode="json")
    except ValueError as exc:
        raise OnboardingError(str(exc)) from exc
    if recipe is not None:
        changes["training_recipe"] = dict(recipe)
    if not changes:
        raise OnboardingError("nothing to change: pass --schema, --recipe and/or --thresholds FILE")
    own = registry is None
    http = registry or registry_client()
    try:
        result: dict[str, Any] = _check(http.patch(f"/models/{name}", json=changes))
    finally:
        if own:
            http.close()
    return result
