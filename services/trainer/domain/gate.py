"""The evaluation gate: does the challenger replace the champion? Both scored on the same held-out data.

Modelled on TFX's evaluator "blessing" and MLflow's thresholds against a baseline: better by a margin on
the primary metric, no other metric worse beyond a bound, optionally within a latency budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.trainer.domain.recipe import LOWER_IS_BETTER, PromotionPolicy


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
    verdict: str = ""
    """The decision in a few words naming the gate's setting that decided it (``min_improvement``, ...)."""


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
    >>> decide("accuracy", Scorecard({"accuracy": 0.781}), Scorecard({"accuracy": 0.775}), policy).verdict
    'not promoted: needs a gain of +0.01 (min_improvement), got +0.006'
    """
    score = challenger.metrics[metric]
    reasons: list[str] = []
    blocking: list[str] = []  # short, each naming the setting that blocked
    passed = ""
    if champion is None or metric not in champion.metrics:
        champion_score = None
        if policy.min_score is not None and gain(metric, score, policy.min_score) < 0:
            blocking.append(f"needs {metric} of at least {policy.min_score:g} (min_score), got {score:.3f}")
            reasons.append(f"no champion; {metric} {score:.4f} misses the floor {policy.min_score}")
        else:
            passed = "no champion to beat"
            reasons.append(f"no champion to beat; {metric} {score:.4f}")
    else:
        champion_score = champion.metrics[metric]
        delta = gain(metric, score, champion_score)
        enough = delta > 0 and delta >= policy.min_improvement
        if enough:
            passed = f"gain {delta:+.3f}" + (
                f" meets +{policy.min_improvement:g} (min_improvement)" if policy.min_improvement else ""
            )
        elif policy.min_improvement > 0:
            blocking.append(
                f"needs a gain of +{policy.min_improvement:g} (min_improvement), got {delta:+.3f}"
            )
        else:
            blocking.append(f"needs a gain above 0 (min_improvement 0), got {delta:+.3f}")
        reasons.append(
            f"{metric}: challenger {score:.4f} vs champion {champion_score:.4f} (gain {delta:+.4f}, "
            f"{'meets' if enough else 'misses'} the required {policy.min_improvement} and > 0)"
        )
        for other, theirs in champion.metrics.items():
            if other == metric or other not in challenger.metrics:
                continue
            loss = -gain(other, challenger.metrics[other], theirs)
            if loss > policy.max_regression:
                blocking.append(
                    f"{other} worse by {loss:.3f}, over {policy.max_regression:g} (max_regression)"
                )
                reasons.append(
                    f"{other} regresses by {loss:.4f} ({challenger.metrics[other]:.4f} vs {theirs:.4f}), "
                    f"more than the allowed {policy.max_regression}"
                )
    budget = policy.latency_budget_ms
    if budget is not None and challenger.latency_ms is not None and challenger.latency_ms > budget:
        blocking.append(f"{challenger.latency_ms:.3f} ms per prediction, over {budget:g} (latency_budget_ms)")
        reasons.append(
            f"latency {challenger.latency_ms:.3f} ms per prediction is over the budget {budget} ms"
        )
    verdict = "not promoted: " + "; ".join(blocking) if blocking else f"promoted: {passed}"
    return GateDecision(
        promote=not blocking,
        metric=metric,
        challenger_score=score,
        champion_score=champion_score,
        reasons=reasons,
        verdict=verdict,
    )
