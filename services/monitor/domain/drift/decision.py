"""From window verdicts to alerts: K of the last M windows, a cooldown, and recovery (hysteresis)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from services.monitor.domain.drift.ranking import Ranking, merge_rankings
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftEvidence, DriftKind, RankedFeature


@dataclass(frozen=True)
class WindowVerdict:
    """What one closed window showed for one model version."""

    window_start: datetime
    window_end: datetime
    kinds: frozenset[DriftKind] = frozenset()
    drifted_features: tuple[str, ...] = ()
    evidence: tuple[DriftEvidence, ...] = ()
    severity: float = 0.0
    ranked_features: tuple[RankedFeature, ...] = ()
    """Drifted features by importance x effect (``ranking.rank_drift``), ignored ones included."""
    importance_share_drifted: float | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.kinds)


@dataclass(frozen=True)
class Alert:
    """A decision to announce: drift (with the windows that justified it) or recovery."""

    recovered: bool
    window_start: datetime
    window_end: datetime
    kinds: tuple[DriftKind, ...] = ()
    drifted_features: tuple[str, ...] = ()
    evidence: tuple[DriftEvidence, ...] = ()
    severity: float = 0.0
    windows_considered: int = 1
    windows_drifted: int = 1
    ranked_features: tuple[RankedFeature, ...] = ()
    importance_share_drifted: float | None = None


@dataclass
class DriftDecider:
    """One model version's alert state; feed it each closed window in order."""

    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    drifting: bool = False
    cooldown_left: int = 0
    history: deque[WindowVerdict] = field(default_factory=deque)

    def observe(self, verdict: WindowVerdict) -> Alert | None:
        t = self.thresholds
        self.history.append(verdict)
        while len(self.history) > t.windows_considered:
            self.history.popleft()
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
        recent = list(self.history)
        drifted = [v for v in recent if v.drifted]
        if not self.drifting:
            if self.cooldown_left > 0 or len(drifted) < t.windows_needed:
                return None
            self.drifting = True
            self.cooldown_left = t.cooldown_windows
            kinds = sorted({k for v in drifted for k in v.kinds}, key=list(DriftKind).index)
            features = sorted({f for v in drifted for f in v.drifted_features})
            ranking = merge_rankings(Ranking(v.ranked_features, v.importance_share_drifted) for v in drifted)
            return Alert(
                recovered=False,
                window_start=drifted[0].window_start,
                window_end=verdict.window_end,
                kinds=tuple(kinds),
                drifted_features=tuple(features),
                evidence=verdict.evidence if verdict.drifted else drifted[-1].evidence,
                severity=max(v.severity for v in drifted),
                windows_considered=len(recent),
                windows_drifted=len(drifted),
                ranked_features=ranking.features,
                importance_share_drifted=ranking.importance_share_drifted,
            )
        if len(recent) == t.windows_considered and not drifted:
            self.drifting = False
            return Alert(recovered=True, window_start=recent[0].window_start, window_end=verdict.window_end)
        return None
