"""Registers the demo model and its first version in the registry, over HTTP, as a data scientist would."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import joblib

from driftloop.demo.dataset import DriftingDataset, StreamPlan
from driftloop.demo.model import FirstVersion, drift_thresholds, training_recipe

PRODUCTION = "production"


class RegistrationError(RuntimeError):
    """The registry refused the demo model; the message carries its answer."""


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RegistrationError(
            f"registry answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def register_first_version(
    registry: httpx.Client,
    model_name: str,
    data: DriftingDataset,
    plan: StreamPlan,
    first: FirstVersion,
    recipe: dict[str, Any] | None = None,
) -> int:
    """Create ``model_name`` (schema, recipe, thresholds), upload ``first`` and point ``production`` at it."""
    _check(
        registry.post(
            "/models",
            json={
                "name": model_name,
                "description": f"Will it rain tomorrow? Trained on {data.source}.",
                "task_type": "binary_classification",
                "tags": {"demo": "closed-loop"},
                "feature_schema": data.schema.model_dump(mode="json"),
                "training_recipe": recipe or training_recipe(),
                "drift_thresholds": drift_thresholds().model_dump(mode="json"),
            },
        )
    )
    buffer = io.BytesIO()
    joblib.dump(first.estimator, buffer)
    metadata = {
        "description": "first version: trained by the demo on the rows before the drift",
        "metrics": {"accuracy": first.validation_accuracy},
        "params": {
            "dataset": data.name,
            "fit_rows": [first.fit_rows.start, first.fit_rows.stop],
            "validation_rows": [first.validation_rows.start, first.validation_rows.stop],
            "plan": plan.as_dict(),
        },
        "tags": {"trained_by": "driftloop demo"},
        "reference_profile": first.profile.model_dump(mode="json"),
    }
    version = _check(
        registry.post(
            f"/models/{model_name}/versions/upload",
            files={"artifact": ("model.joblib", buffer.getvalue(), "application/octet-stream")},
            data={"metadata": json.dumps(metadata)},
        )
    )["version"]
    _check(
        registry.put(
            f"/models/{model_name}/aliases/{PRODUCTION}",
            json={"version": version, "reason": "first version, trained before the drift"},
        )
    )
    return int(version)
