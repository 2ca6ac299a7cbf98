"""MLflow model zips (an MLmodel folder, sklearn flavor) read and rewritten without MLflow."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from shared.mlflow_model import MlflowModelError, is_mlflow_model, load_estimator, repackage


def mlflow_zip(estimator: object, flavors: dict[str, object] | None = None, fmt: str = "pickle") -> bytes:
    """What the registry stores for ``mlflow.sklearn.log_model(..., serialization_format=fmt)``."""
    spec = {
        "artifact_path": "model",
        "run_id": "0" * 32,
        "model_id": "m-1",
        "signature": {"inputs": "[]"},
        "saved_input_example_info": {"artifact_path": "input_example.json", "type": "ndarray"},
        "flavors": flavors
        or {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": fmt, "sklearn_version": "1"},
        },
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("MLmodel", yaml.safe_dump(spec))
        archive.writestr("model.pkl", pickle.dumps(estimator))
        archive.writestr("requirements.txt", "scikit-learn\n")
        archive.writestr("input_example.json", "[[0, 0]]")
    return out.getvalue()


def fitted(seed: int) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(100, 2))
    return LogisticRegression().fit(x, (x[:, seed % 2] > 0).astype(int)), x


def test_an_mlflow_zip_loads_its_estimator_and_a_joblib_pickle_is_not_one() -> None:
    model, x = fitted(0)
    data = mlflow_zip(model)
    assert is_mlflow_model(data)
    np.testing.assert_array_equal(load_estimator(data).predict(x), model.predict(x))
    assert not is_mlflow_model(pickle.dumps(model))
    assert not is_mlflow_model(b"PK\x03\x04 broken zip")


def test_a_repackaged_model_keeps_the_format_and_environment_and_answers_like_the_new_estimator() -> None:
    old, x = fitted(0)
    new, _ = fitted(1)
    data = repackage(mlflow_zip(old, fmt="cloudpickle"), new)
    np.testing.assert_array_equal(load_estimator(data).predict(x), new.predict(x))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        spec = yaml.safe_load(archive.read("MLmodel"))
        assert sorted(archive.namelist()) == ["MLmodel", "model.pkl", "requirements.txt"]
    assert spec["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert not {"run_id", "model_id", "signature", "saved_input_example_info"} & set(spec)


@pytest.mark.parametrize(
    ("flavors", "fmt", "message"),
    [
        ({"python_function": {"loader_module": "mlflow.pyfunc.model"}}, "pickle", "flavors"),
        (None, "skops", "serialization_format 'skops'"),
    ],
)
def test_models_driftloop_cannot_load_are_refused_naming_why(
    flavors: dict[str, object] | None, fmt: str, message: str
) -> None:
    model, _ = fitted(0)
    with pytest.raises(MlflowModelError, match=message):
        load_estimator(mlflow_zip(model, flavors, fmt))
