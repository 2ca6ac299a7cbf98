"""MLflow's model format as Driftloop stores it: one zip of an ``MLmodel`` folder (sklearn or
python_function flavor backed by sklearn), loaded by the model server and the trainer without MLflow, and
rewritten by the trainer around a retrained estimator so MLflow clients still load the new version.

An artifact that is not such a zip is a joblib pickle, as before (docs/mlflow.md).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from datetime import UTC, datetime
from typing import Any

import yaml

MLMODEL = "MLmodel"
SKLEARN_FLAVOR = "sklearn"
PICKLE_FORMATS = ("pickle", "cloudpickle")


class MlflowModelError(ValueError):
    """The artifact is an MLflow model Driftloop cannot load (flavor or serialization it does not read)."""


def is_mlflow_model(data: bytes) -> bool:
    """Whether ``data`` is a zip with an ``MLmodel`` file at its top (an MLflow model folder).

    >>> is_mlflow_model(b"not a zip")
    False
    """
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return MLMODEL in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _mlmodel(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(archive.read(MLMODEL))
    except yaml.YAMLError as exc:
        raise MlflowModelError(f"the MLmodel file is not YAML: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise MlflowModelError("the MLmodel file has no flavors")
    return spec


def _sklearn_flavor(spec: dict[str, Any]) -> dict[str, Any]:
    flavors = spec["flavors"]
    sklearn = flavors.get(SKLEARN_FLAVOR)
    pyfunc = flavors.get("python_function") or {}
    if not isinstance(sklearn, dict) and pyfunc.get("loader_module") == "mlflow.sklearn":
        sklearn = {
            "pickled_model": pyfunc.get("model_path", "model.pkl"),
            "serialization_format": "cloudpickle",
        }
    if not isinstance(sklearn, dict):
        raise MlflowModelError(
            f"flavors {sorted(flavors)} are not loadable here: Driftloop serves MLflow models with the sklearn "
            "flavor (or python_function backed by mlflow.sklearn)"
        )
    fmt = str(sklearn.get("serialization_format", "cloudpickle"))
    if fmt not in PICKLE_FORMATS:
        raise MlflowModelError(
            f"serialization_format {fmt!r} is not loadable here; log the model with "
            "serialization_format='cloudpickle' (or 'pickle')"
        )
    return sklearn


def load_estimator(data: bytes) -> Any:
    """The scikit-learn estimator inside an MLflow model zip (only call on verified, trusted artifacts:
    this unpickles, like joblib does for the registry's other artifacts)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        flavor = _sklearn_flavor(_mlmodel(archive))
        member = str(flavor.get("pickled_model", "model.pkl"))
        try:
            payload = archive.read(member)
        except KeyError:
            raise MlflowModelError(
                f"the MLmodel file names {member!r}, which is not in the artifact"
            ) from None
    return pickle.loads(payload)  # a verified artifact of the registry, trusted like joblib.load


def repackage(template: bytes, estimator: Any) -> bytes:
    """``template`` (an MLflow model zip) with its estimator replaced by ``estimator``: the same flavors and
    environment files, pickled in the template's serialization format, so MLflow clients load the retrained
    version like the one it replaces. The signature and input example go: they described the old estimator,
    and the retrained one takes the model's feature schema (a DataFrame with its columns)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as source:
        spec = _mlmodel(source)
        flavor = _sklearn_flavor(spec)
        member = str(flavor.get("pickled_model", "model.pkl"))
        if flavor.get("serialization_format") == "cloudpickle":
            import cloudpickle

            pickled = cloudpickle.dumps(estimator)
        else:
            pickled = pickle.dumps(estimator)
        dropped = {
            str((spec.get("saved_input_example_info") or {}).get("artifact_path", "input_example.json"))
        }
        dropped.add("serving_input_example.json")
        for key in (
            "run_id",
            "model_id",
            "model_uuid",
            "artifact_path",
            "signature",
            "saved_input_example_info",
        ):
            spec.pop(key, None)
        spec["utc_time_created"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as target:
            for info in source.infolist():
                if info.is_dir() or info.filename in dropped:
                    continue
                if info.filename == MLMODEL:
                    target.writestr(MLMODEL, yaml.safe_dump(spec, sort_keys=False))
                elif info.filename == member:
                    target.writestr(member, pickled)
                else:
                    target.writestr(info.filename, source.read(info.filename))
    return out.getvalue()
