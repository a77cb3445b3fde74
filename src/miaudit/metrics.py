"""Attack metrics from (scores, true membership): ROC, AUC, advantage, TPR at low FPR.

TPR at FPR α is the largest TPR over thresholds whose FPR is at most α, never interpolated
upward (DESIGN.md). A TPR at α backed by fewer than ``10/α`` non-members is flagged
unreliable: with fewer, the threshold sits on a handful of non-members.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_curve

#: a TPR at α needs about this many non-members per unit of α to mean anything
RELIABILITY_FACTOR = 10.0


def roc(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score, starting at (0, 0).

    Parameters
    ----------
    scores : (N,) float, higher = member
    member : (N,) bool
    """
    member = np.asarray(member, dtype=bool)
    if member.all() or not member.any():
        raise ValueError("ROC needs both members and non-members")
    fpr, tpr, thr = roc_curve(member, np.asarray(scores, dtype=np.float64), drop_intermediate=False)
    return fpr, tpr, thr


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr_from_roc(fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> float:
    """Largest TPR among ROC points with FPR ≤ α."""
    ok = fpr <= alpha + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def tpr_at_fpr(scores: np.ndarray, member: np.ndarray, alpha: float) -> float:
    """Largest TPR over thresholds whose FPR is at most ``alpha``; never interpolated.

    Examples
    --------
    >>> tpr_at_fpr(np.array([.9, .8, .3, .1]), np.array([1, 0, 1, 0], bool), 0.0)
    0.5
    """
    fpr, tpr, _ = roc(scores, member)
    return tpr_at_fpr_from_roc(fpr, tpr, alpha)


def is_reliable(n_nonmembers: int, alpha: float) -> bool:
    """Whether ``n_nonmembers`` can back a TPR at FPR α (at least 10/α of them; α = 0 never is)."""
    if alpha <= 0:
        return False
    return n_nonmembers >= RELIABILITY_FACTOR / alpha


def fpr_key(alpha: float) -> str:
    """The results.json key of an FPR: '0.0', '0.0001', '0.001', '0.01', '0.1'."""
    return repr(float(alpha))


@dataclass
class AttackMetrics:
    """Metrics of one attack against one target."""

    auc: float
    advantage: float
    tpr_at_fpr: dict[str, float]
    reliable: dict[str, bool]
    n_members: int
    n_nonmembers: int
    roc_fpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    roc_tpr: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def as_dict(self) -> dict:
        return {
            "auc": self.auc,
            "advantage": self.advantage,
            "tpr_at_fpr": dict(self.tpr_at_fpr),
            "reliable": dict(self.reliable),
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
        }


def attack_metrics(scores: np.ndarray, member: np.ndarray, fprs: tuple[float, ...]) -> AttackMetrics:
    """AUC, advantage = max(TPR − FPR), TPR at each FPR, and reliability flags."""
    member = np.asarray(member, dtype=bool)
    fpr, tpr, _ = roc(scores, member)
    n_out = int((~member).sum())
    return AttackMetrics(
        auc=auc_from_roc(fpr, tpr),
        advantage=float(np.max(tpr - fpr)),
        tpr_at_fpr={fpr_key(a): tpr_at_fpr_from_roc(fpr, tpr, a) for a in fprs},
        reliable={fpr_key(a): is_reliable(n_out, a) for a in fprs},
        n_members=int(member.sum()),
        n_nonmembers=n_out,
        roc_fpr=fpr,
        roc_tpr=tpr,
    )


def average_metrics(per_target: list[AttackMetrics]) -> dict:
    """Mean over targets of AUC, advantage and each TPR; a figure is reliable only if all are."""
    keys = list(per_target[0].tpr_at_fpr)
    return {
        "auc": float(np.mean([m.auc for m in per_target])),
        "advantage": float(np.mean([m.advantage for m in per_target])),
        "tpr_at_fpr": {k: float(np.mean([m.tpr_at_fpr[k] for m in per_target])) for k in keys},
        "reliable": {k: all(m.reliable[k] for m in per_target) for k in keys},
        "per_target": [m.as_dict() for m in per_target],
    }
