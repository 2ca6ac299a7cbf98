"""Per-feature importance of a trained version, measured on the holdout it was scored on. Pure.

Stored in the version's reference profile (``feature_importance``): the monitor ranks drifted features by
importance x effect and may ignore drift in features the model hardly uses (``min_importance_share``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from services.trainer.domain.recipe import TrainingRecipe
from services.trainer.domain.training import inputs_of, labels_of
from shared.answer_type import output_type_of
from shared.feature_schema import FeatureSchema
from shared.importance import permutation_importance

log = logging.getLogger(__name__)


def holdout_importance(
    model: Any, holdout: pd.DataFrame, recipe: TrainingRecipe, schema: FeatureSchema
) -> dict[str, float]:
    """Permutation importance of each of the recipe's features on (a sample of at most 2,000) holdout rows.

    Labels are read in the type the model answers with, as :func:`training.score` reads them; the score is
    accuracy for classifiers and RMSE for regressors, the recipe's ``random_state`` seeds the shuffles.
    A model that fails on shuffled rows costs the version its importance, not the run: the monitor then
    ranks its drift by effect alone, and the warning names the error.
    """
    if holdout.empty:
        return {}
    x = inputs_of(holdout, recipe, schema)
    y = labels_of(holdout, recipe, output_type_of(model))
    try:
        return permutation_importance(model, x, y, recipe.task, seed=recipe.random_state)
    except Exception as exc:  # the recipe's estimator, on rows it was never shown: its failure, not ours
        log.warning("feature importance not measured (%s: %s); drift is ranked by effect alone",
                    type(exc).__name__, exc)  # fmt: skip
        return {}
