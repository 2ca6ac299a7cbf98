"""The few MLflow tracking calls that ``mlflow.<flavor>.log_model(..., registered_model_name=...)`` makes:
experiments, runs and logged models, kept as lineage records of the versions registered from them.

Not an experiment tracker: no run search, no UI, metrics kept only as logged (docs/mlflow.md).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter

from services.registry.domain.auth import Principal
from services.registry.domain.mlflow_mapping import MlflowError, tags_from_mlflow, tags_to_mlflow
from services.registry.entrypoints.deps import Reader, RegistryDep, Writer
from services.registry.entrypoints.mlflow_common import PREFIX, Params, required
from services.registry.service import Registry

router = APIRouter(prefix=PREFIX, tags=["mlflow tracking"], include_in_schema=False)

DEFAULT_EXPERIMENT = "0"
MAX_METRICS = 10_000
MAX_ITEMS = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _default_experiment() -> dict[str, Any]:
    return {
        "experiment_id": DEFAULT_EXPERIMENT,
        "name": "Default",
        "artifact_location": f"mlflow-artifacts:/{DEFAULT_EXPERIMENT}",
        "lifecycle_stage": "active",
        "tags": [],
        "creation_time": 0,
        "last_update_time": 0,
    }


def _experiment(registry: Registry, experiment_id: str) -> dict[str, Any]:
    if experiment_id == DEFAULT_EXPERIMENT:
        return _default_experiment()
    found = registry.store.mlflow_record("experiment", experiment_id)
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={experiment_id} exists", 404)
    return found


def _pairs(params: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = params.get(key) or []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"{key} must be a list of at most {MAX_ITEMS} items")
    if not all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in items):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"every item of {key} needs a string key")
    return items


# ---------------------------------------------------------------- experiments


@router.get("/experiments/get-by-name")
def get_experiment_by_name(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    name = required(params, "experiment_name")
    found = (
        _default_experiment() if name == "Default" else registry.store.mlflow_record_named("experiment", name)
    )
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'", 404)
    return {"experiment": found}


@router.get("/experiments/get")
def get_experiment(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"experiment": _experiment(registry, required(params, "experiment_id"))}


@router.post("/experiments/create")
def create_experiment(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    """A new experiment; its artifacts always go to this registry's artifact store (artifact_location is
    not configurable: files are read and written only under the artifact root)."""
    name = required(params, "name")
    if name == "Default" or registry.store.mlflow_record_named("experiment", name) is not None:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    experiment_id = str(uuid.uuid4().int % 10**15)
    body = {
        "experiment_id": experiment_id,
        "name": name,
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "active",
        "tags": tags_to_mlflow(tags_from_mlflow(params.get("tags")), hide_reserved=False),
        "creation_time": _now_ms(),
        "last_update_time": _now_ms(),
    }
    registry.store.save_mlflow_record("experiment", experiment_id, name, body, user, "create")
    return {"experiment_id": experiment_id}


@router.post("/experiments/search")
@router.get("/experiments/search")
def search_experiments(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"experiments": [_default_experiment(), *registry.store.mlflow_records("experiment")]}


# ---------------------------------------------------------------- runs


def _run(registry: Registry, run_id: str) -> dict[str, Any]:
    found = registry.store.mlflow_record("run", run_id)
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run with id={run_id} not found", 404)
    return found


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def _save_run(registry: Registry, run: dict[str, Any], user: Principal, action: str) -> dict[str, Any]:
    info = run["info"]
    return registry.store.save_mlflow_record("run", info["run_id"], info["run_name"], run, user, action)


@router.post("/runs/create")
def create_run(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    experiment_id = str(params.get("experiment_id") or DEFAULT_EXPERIMENT)
    experiment = _experiment(registry, experiment_id)
    run_id = uuid.uuid4().hex
    tags = tags_from_mlflow(params.get("tags"))
    run_name = str(params.get("run_name") or tags.get("mlflow.runName") or run_id[:8])
    tags.setdefault("mlflow.runName", run_name)
    run = {
        "info": {
            "run_id": run_id,
            "run_uuid": run_id,
            "run_name": run_name,
            "experiment_id": experiment_id,
            "user_id": user.name,
            "status": "RUNNING",
            "start_time": int(params.get("start_time") or _now_ms()),
            "artifact_uri": f"{experiment['artifact_location']}/{run_id}/artifacts",
            "lifecycle_stage": "active",
        },
        "data": {"metrics": [], "params": [], "tags": tags_to_mlflow(tags, hide_reserved=False)},
        "inputs": {},
        "outputs": {},
        "_metric_history": [],
    }
    return {"run": _public(_save_run(registry, run, user, "create"))}


@router.get("/runs/get")
def get_run(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"run": _public(_run(registry, required(params, "run_id") or params.get("run_uuid", "")))}


@router.post("/runs/update")
def update_run(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    info = run["info"]
    for key in ("status", "end_time", "run_name"):
        if params.get(key) not in (None, ""):
            info[key] = params[key]
    return {"run_info": _save_run(registry, run, user, "update")["info"]}


def _log(
    run: dict[str, Any],
    metrics: list[dict[str, Any]],
    params: list[dict[str, Any]],
    tags: list[dict[str, Any]],
) -> None:
    data = run["data"]
    history: list[dict[str, Any]] = run.setdefault("_metric_history", [])
    if len(history) + len(metrics) > MAX_METRICS:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"a run keeps at most {MAX_METRICS} metric values here")
    latest = {m["key"]: m for m in data["metrics"]}
    for m in metrics:
        entry = {
            "key": m["key"],
            "value": float(m.get("value", 0.0)),
            "timestamp": int(m.get("timestamp") or _now_ms()),
            "step": int(m.get("step") or 0),
        }
        history.append(entry)
        latest[m["key"]] = entry
    data["metrics"] = list(latest.values())
    known = {p["key"]: p for p in data["params"]}
    for p in params:
        if p["key"] in known and known[p["key"]]["value"] != str(p.get("value", "")):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE", f"param {p['key']!r} was already logged with another value"
            )
        known[p["key"]] = {"key": p["key"], "value": str(p.get("value", ""))}
    data["params"] = list(known.values())
    merged = {t["key"]: t for t in data["tags"]}
    merged.update({t["key"]: {"key": t["key"], "value": str(t.get("value", ""))} for t in tags})
    data["tags"] = list(merged.values())


@router.post("/runs/log-batch")
def log_batch(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    _log(run, _pairs(params, "metrics"), _pairs(params, "params"), _pairs(params, "tags"))
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/log-metric")
def log_metric(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    _log(run, [{**params, "key": required(params, "key")}], [], [])
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/log-parameter")
def log_param(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    _log(run, [], [{"key": required(params, "key"), "value": params.get("value", "")}], [])
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/set-tag")
def set_run_tag(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id") or params.get("run_uuid", ""))
    _log(run, [], [], [{"key": required(params, "key"), "value": params.get("value", "")}])
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/log-model")
def log_model_json(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    """MLflow 2's record of a logged model on its run (kept as the ``mlflow.log-model.history`` tag)."""
    run = _run(registry, required(params, "run_id"))
    _log(run, [], [], [{"key": "mlflow.log-model.history", "value": str(params.get("model_json", ""))}])
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/log-inputs")
def log_inputs(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    inputs = run.setdefault("inputs", {})
    for key in ("datasets", "models"):
        if params.get(key):
            target = "dataset_inputs" if key == "datasets" else "model_inputs"
            inputs[target] = [*inputs.get(target, []), *params[key]][:MAX_ITEMS]
    _save_run(registry, run, user, "log")
    return {}


@router.post("/runs/outputs")
def log_outputs(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    outputs = run.setdefault("outputs", {})
    outputs["model_outputs"] = [*outputs.get("model_outputs", []), *(params.get("models") or [])][:MAX_ITEMS]
    _save_run(registry, run, user, "log")
    return {}


@router.get("/metrics/get-history")
def get_metric_history(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    run = _run(registry, required(params, "run_id"))
    key = required(params, "metric_key")
    return {"metrics": [m for m in run.get("_metric_history", []) if m["key"] == key]}


# ---------------------------------------------------------------- logged models (MLflow 3)


def _logged_model(registry: Registry, model_id: str) -> dict[str, Any]:
    found = registry.store.mlflow_record("logged_model", model_id)
    if found is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{model_id}' not found.", 404)
    return found


def _save_logged_model(
    registry: Registry, model: dict[str, Any], user: Principal, action: str
) -> dict[str, Any]:
    info = model["info"]
    info["last_updated_timestamp_ms"] = _now_ms()
    return registry.store.save_mlflow_record(
        "logged_model", info["model_id"], info["name"], model, user, action
    )


@router.post("/logged-models")
def create_logged_model(params: Params, registry: RegistryDep, user: Writer) -> dict[str, Any]:
    experiment_id = str(params.get("experiment_id") or DEFAULT_EXPERIMENT)
    experiment = _experiment(registry, experiment_id)
    model_id = f"m-{uuid.uuid4().hex}"
    now = _now_ms()
    model = {
        "info": {
            "model_id": model_id,
            "experiment_id": experiment_id,
            "name": str(params.get("name") or "model"),
            "artifact_uri": f"{experiment['artifact_location']}/models/{model_id}/artifacts",
            "creation_timestamp_ms": now,
            "last_updated_timestamp_ms": now,
            "status": "LOGGED_MODEL_PENDING",
            "status_message": "",
            "model_type": str(params.get("model_type") or ""),
            "source_run_id": str(params.get("source_run_id") or ""),
            "tags": _pairs(params, "tags"),
        },
        "data": {"params": _pairs(params, "params"), "metrics": []},
    }
    return {"model": _save_logged_model(registry, model, user, "create")}


@router.get("/logged-models/{model_id}")
def get_logged_model(model_id: str, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    return {"model": _logged_model(registry, model_id)}


@router.patch("/logged-models/{model_id}")
def finalize_logged_model(
    model_id: str, params: Params, registry: RegistryDep, user: Writer
) -> dict[str, Any]:
    model = _logged_model(registry, model_id)
    status = str(params.get("status") or "LOGGED_MODEL_READY")
    if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"):
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", f"status must be LOGGED_MODEL_READY or ..._FAILED, not {status}"
        )
    model["info"]["status"] = status
    return {"model": _save_logged_model(registry, model, user, "finalize")}


@router.patch("/logged-models/{model_id}/tags")
def set_logged_model_tags(
    model_id: str, params: Params, registry: RegistryDep, user: Writer
) -> dict[str, Any]:
    model = _logged_model(registry, model_id)
    tags = {t["key"]: t for t in model["info"]["tags"]}
    tags.update(
        {t["key"]: {"key": t["key"], "value": str(t.get("value", ""))} for t in _pairs(params, "tags")}
    )
    model["info"]["tags"] = list(tags.values())
    _save_logged_model(registry, model, user, "tag")
    return {}


@router.delete("/logged-models/{model_id}/tags/{tag_key}")
def delete_logged_model_tag(
    model_id: str, tag_key: str, registry: RegistryDep, user: Writer
) -> dict[str, Any]:
    model = _logged_model(registry, model_id)
    model["info"]["tags"] = [t for t in model["info"]["tags"] if t["key"] != tag_key]
    _save_logged_model(registry, model, user, "tag")
    return {}


@router.post("/logged-models/{model_id}/params")
def log_logged_model_params(
    model_id: str, params: Params, registry: RegistryDep, user: Writer
) -> dict[str, Any]:
    model = _logged_model(registry, model_id)
    known = {p["key"]: p for p in model["data"]["params"]}
    known.update(
        {p["key"]: {"key": p["key"], "value": str(p.get("value", ""))} for p in _pairs(params, "params")}
    )
    model["data"]["params"] = list(known.values())
    _save_logged_model(registry, model, user, "params")
    return {}


@router.post("/logged-models/search")
def search_logged_models(params: Params, registry: RegistryDep, _user: Reader) -> dict[str, Any]:
    experiments = {str(e) for e in params.get("experiment_ids") or []}
    models = [
        m
        for m in registry.store.mlflow_records("logged_model")
        if not experiments or m["info"]["experiment_id"] in experiments
    ]
    return {"models": models}
