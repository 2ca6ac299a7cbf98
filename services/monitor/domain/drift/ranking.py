"""Which drift matters: drifted features weighed by how much the model relies on them. Pure.

A feature's ``importance`` is its share of the model's permutation importance (the version's reference
profile holds the raw figures, ``feature_importance``); its ``effect`` is the drift test's effect size over
the threshold it had to pass (above 1 for every drifted feature), so numeric and categorical features
compare. ``score = importance x effect`` orders them: a small shift in the feature the model leans on comes
before a large one in a feature it ignores. Features below the model's ``min_importance_share`` are
marked ``ignored`` and do not count as feature drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.monitor.domain.drift.columns import ColumnDrift
from shared.events import RankedFeature
from shared.importance import importance_shares

MAX_EFFECT = 1e9
"""An effect over a zero threshold or an infinite distance is capped, as the evidence caps it."""


@dataclass(frozen=True)
class Ranking:
    """Drifted features, highest score first, and the share of the model's importance they hold."""

    features: tuple[RankedFeature, ...] = ()
    importance_share_drifted: float | None = None
    """None: the version has no importance, so nothing can be said about how much of the model moved."""

    @property
    def counted(self) -> tuple[str, ...]:
        """The drifted features that count as feature drift (not ignored), in ranked order."""
        return tuple(f.feature for f in self.features if not f.ignored)


def relative_effect(column: ColumnDrift) -> float:
    """The effect size over its threshold: 1 at the threshold, 2 for a shift twice as large."""
    if column.effect_threshold <= 0:
        return MAX_EFFECT
    effect = column.effect_size / column.effect_threshold
    return min(effect, MAX_EFFECT) if effect == effect else MAX_EFFECT


def rank_drift(
    drifted: Sequence[ColumnDrift], importance: Mapping[str, float], min_importance_share: float = 0.0
) -> Ranking:
    """Rank ``drifted`` columns by importance x effect; mark those below ``min_importance_share`` ignored.

    Without importance (an older version, or one registered without ``--data``/``--target``) every feature
    keeps the same weight (importance None): the ranking is by effect, nothing is ignored and the share moved is unknown.

    Examples
    --------
    >>> from services.monitor.domain.drift.columns import ColumnDrift
    >>> def col(name, effect):
    ...     return ColumnDrift(name, "numeric", "ks", 0.0, "wasserstein_norm", effect, 0.1, 1000, 1000)
    >>> r = rank_drift([col("noise", 0.9), col("income", 0.2)], {"income": 0.6, "age": 0.4, "noise": 0.0}, 0.05)
    >>> [(f.feature, f.importance, round(f.effect, 1), round(f.score, 1), f.ignored) for f in r.features]
    [('income', 0.6, 2.0, 1.2, False), ('noise', 0.0, 9.0, 0.0, True)]
    >>> r.importance_share_drifted, r.counted
    (0.6, ('income',))
    """
    shares = importance_shares(importance)
    known = bool(shares)
    ranked = []
    for column in drifted:
        share = shares.get(column.feature, 0.0) if known else 1.0
        effect = relative_effect(column)
        ranked.append(
            RankedFeature(
                feature=column.feature,
                importance=share if known else None,
                effect=effect,
                score=share * effect if known else effect,
                ignored=known and share < min_importance_share,
            )
        )
    ranked.sort(key=lambda f: (-f.score, -f.effect, f.feature))
    moved = min(sum(f.importance or 0.0 for f in ranked), 1.0) if known else None
    return Ranking(tuple(ranked), moved)


def merge_rankings(rankings: Iterable[Ranking]) -> Ranking:
    """One ranking over several windows (an alert's K drifted windows): each feature at its highest score.

    The share moved is that of every feature drifted in any of them, each counted once.

    Examples
    --------
    >>> a = RankedFeature(feature="a", importance=0.5, effect=2.0, score=1.0)
    >>> b = RankedFeature(feature="b", importance=0.2, effect=1.5, score=0.3)
    >>> a2 = RankedFeature(feature="a", importance=0.5, effect=3.0, score=1.5)
    >>> merged = merge_rankings([Ranking((a, b), 0.7), Ranking((a2,), 0.5)])
    >>> [(f.feature, f.score) for f in merged.features], merged.importance_share_drifted
    ([('a', 1.5), ('b', 0.3)], 0.7)
    """
    rankings = list(rankings)
    best: dict[str, RankedFeature] = {}
    for ranking in rankings:
        for f in ranking.features:
            if f.feature not in best or f.score > best[f.feature].score:
                best[f.feature] = f
    ranked = sorted(best.values(), key=lambda f: (-f.score, -f.effect, f.feature))
    known = any(r.importance_share_drifted is not None for r in rankings)
    moved = min(sum(f.importance or 0.0 for f in ranked), 1.0) if known else None
    return Ranking(tuple(ranked), moved)
