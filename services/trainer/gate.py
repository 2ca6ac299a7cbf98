"""The evaluation gate: does the challenger replace the champion? Both scored on the same held-out data.

Modelled on TFX's evaluator "blessing" and MLflow's thresholds against a baseline: better by a margin on
the primary metric, no other metric worse beyond a bound, optionally within a latency budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.trainer.recipe import LOWER_IS_BETTER, PromotionPolicy


@dataclass(frozen=True)
class Scorecard:
    """One model's metrics on the held-out set and its mean latency per prediction."""

    metrics: Mapping[str, float]
    latency_ms: float | None = None


@dataclass(frozen=True)
class GateDecision:
    """Promote or not, with both scores on the primary metric and every reason."""

    promote: bool
    metric: str
    challenger_score: float
    champion_score: float | None
    reasons: list[str] = field(default_factory=list)


def gain(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is, positive when better, whichever way the metric points."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def decide(
    metric: str, challenger: Scorecard, champion: Scorecard | None, policy: PromotionPolicy
) -> GateDecision:
    """Apply ``policy`` to the two scorecards.

    Examples
    --------
    >>> policy = PromotionPolicy(min_improvement=0.01)
    >>> decide("accuracy", Scorecard({"accuracy": 0.9}), Scorecard({"accuracy": 0.8}), policy).promote
    True
    >>> decide("accuracy", Scorecard({"accuracy": 0.8}), Scorecard({"accuracy": 0.8}), policy).promote
    False
    """
    score = challenger.metrics[metric]
    reasons: list[str] = []
    blocked = False
    if champion is None or metric not in champion.metrics:
        champion_score = None
        if policy.min_score is not None and gain(metric, score, policy.min_score) < 0:
            blocked = True
            reasons.append(f"no champion; {metric} {score:.4f} misses the floor {policy.min_score}")
        else:
            reasons.append(f"no champion to beat; {metric} {score:.4f}")
    else:
        champion_score = champion.metrics[metric]
        delta = gain(metric, score, champion_score)
        enough = delta > 0 and delta >= policy.min_improvement
        blocked |= not enough
        reasons.append(
            f"{metric}: challenger {score:.4f} vs champion {champion_score:.4f} (gain {delta:+.4f}, "
            f"{'meets' if enough else 'misses'} the required {policy.min_improvement} and > 0)"
        )
        for other, theirs in champion.metrics.items():
            if other == metric or other not in challenger.metrics:
                continue
            loss = -gain(other, challenger.metrics[other], theirs)
            if loss > policy.max_regression:
                blocked = True
                reasons.append(
                    f"{other} regresses by {loss:.4f} ({challenger.metrics[other]:.4f} vs {theirs:.4f}), "
                    f"more than the allowed {policy.max_regression}"
                )
    budget = policy.latency_budget_ms
    if budget is not None and challenger.latency_ms is not None and challenger.latency_ms > budget:
        blocked = True
        reasons.append(
            f"latency {challenger.latency_ms:.3f} ms per prediction is over the budget {budget} ms"
        )
    return GateDecision(
        promote=not blocked,
        metric=metric,
        challenger_score=score,
        champion_score=champion_score,
        reasons=reasons,
    )
