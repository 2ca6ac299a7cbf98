"""Fit a small churn model on docs/examples/train.csv and write it to model.joblib (in the working folder).

A scikit-learn pipeline fitted on a DataFrame keeps its feature names (``feature_names_in_``), which is
what ``driftloop models register --data`` reads them from. Run from the repo root with the venv active:
``python docs/examples/make_model.py``.
"""

from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

data = pd.read_csv(Path(__file__).with_name("train.csv"))
features = data.drop(columns="churned")
model = make_pipeline(
    ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), ["age", "tenure"]),
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    ),
    LogisticRegression(max_iter=1000),
)
model.fit(features, data["churned"])
joblib.dump(model, "model.joblib")
print(f"wrote model.joblib: accuracy {model.score(features, data['churned']):.3f} on {len(data)} rows")
