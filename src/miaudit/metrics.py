"""Attack metrics from (scores, true membership): ROC, AUC, advantage, TPR at low FPR, bootstrap
confidence intervals and positive predictive value.

TPR at FPR α is the largest TPR over thresholds whose FPR is at most α, never interpolated
upward (DESIGN.md). A TPR at α backed by fewer than ``10/α`` non-members is flagged
unreliable: with fewer, the threshold sits on a handful of non-members.

Confidence intervals (``bootstrap_ci``) are percentile intervals of the *target-averaged*
figure: each resample redraws every target's members and non-members separately with
replacement, recomputes the figure per target and averages over targets. A resample is never
materialised: scores are sorted once per target, each resample is a vector of multiplicities
per distinct score, and cumulative sums give its whole ROC (``weighted_roc_stats``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata
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


def auc(scores: np.ndarray, member: np.ndarray) -> float:
    """Area under the ROC: P(member score > non-member score) + ½ P(tie), the Mann–Whitney U
    statistic over (#members · #non-members), from average ranks (ties counted exactly).

    The one AUC of the package (attack results, RMIA's tuning, the vulnerability statistics);
    NaN without both members and non-members. The bootstrap's ``weighted_roc_stats`` computes the
    same statistic from multiplicities.

    >>> auc(np.array([3.0, 2.0, 1.0, 2.0]), np.array([True, True, False, False]))
    0.875
    """
    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(member, dtype=bool)
    n_pos = int(member.sum())
    n_neg = len(member) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[member].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr_from_roc(fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> float:
    """Largest TPR among ROC points with FPR ≤ α."""
    ok = fpr <= alpha + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def fpr_achieved_from_roc(fpr: np.ndarray, alpha: float) -> float:
    """FPR of the operating point that ``tpr_at_fpr_from_roc`` picks (the largest FPR ≤ α on the ROC)."""
    ok = fpr <= alpha + 1e-12
    return float(fpr[ok].max()) if ok.any() else 0.0


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
    fpr_achieved: dict[str, float] = field(default_factory=dict)  # FPR of the operating point behind each TPR@α
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
            "fpr_achieved": dict(self.fpr_achieved),
        }


def attack_metrics(scores: np.ndarray, member: np.ndarray, fprs: tuple[float, ...]) -> AttackMetrics:
    """AUC, advantage = max(TPR − FPR), TPR at each FPR, and reliability flags."""
    member = np.asarray(member, dtype=bool)
    fpr, tpr, _ = roc(scores, member)
    n_out = int((~member).sum())
    return AttackMetrics(
        auc=auc(scores, member),
        advantage=float(np.max(tpr - fpr)),
        tpr_at_fpr={fpr_key(a): tpr_at_fpr_from_roc(fpr, tpr, a) for a in fprs},
        reliable={fpr_key(a): is_reliable(n_out, a) for a in fprs},
        n_members=int(member.sum()),
        n_nonmembers=n_out,
        fpr_achieved={fpr_key(a): fpr_achieved_from_roc(fpr, a) for a in fprs},
        roc_fpr=fpr,
        roc_tpr=tpr,
    )


def average_metrics(per_target: list[AttackMetrics], priors: Sequence[float] = ()) -> dict:
    """Mean over targets of AUC, advantage and each TPR; a figure is reliable only if all are.

    PPV at each prior is taken at the mean operating point (mean TPR@α, mean FPR it has), so a
    target that flags nobody does not turn the average into NaN.
    """
    keys = list(per_target[0].tpr_at_fpr)
    tpr = {k: float(np.mean([m.tpr_at_fpr[k] for m in per_target])) for k in keys}
    fpr = {k: float(np.mean([m.fpr_achieved.get(k, 0.0) for m in per_target])) for k in keys}
    out = {
        "auc": float(np.mean([m.auc for m in per_target])),
        "advantage": float(np.mean([m.advantage for m in per_target])),
        "tpr_at_fpr": tpr,
        "fpr_achieved": fpr,
        "reliable": {k: all(m.reliable[k] for m in per_target) for k in keys},
        "per_target": [m.as_dict() for m in per_target],
    }
    if priors:
        out["ppv"] = ppv_table(tpr, fpr, priors)
    return out


def ppv(tpr: float, fpr: float, prior: float) -> float:
    """Positive predictive value π·TPR / (π·TPR + (1−π)·FPR) at membership prior π; NaN if nothing is flagged.

    Examples
    --------
    >>> ppv(0.5, 0.01, 0.5)
    0.9803921568627451
    >>> round(ppv(0.5, 0.01, 0.01), 4)
    0.3356
    """
    num = prior * tpr
    den = num + (1.0 - prior) * fpr
    return float(num / den) if den > 0 else float("nan")


def ppv_table(tpr: dict[str, float], fpr: dict[str, float], priors: Sequence[float]) -> dict[str, dict[str, float]]:
    """``{prior key: {FPR key: PPV}}`` at each operating point (TPR@α with the FPR it actually has)."""
    return {fpr_key(p): {k: ppv(tpr[k], fpr[k], p) for k in tpr} for p in priors}


# --- bootstrap -------------------------------------------------------------------------------


def bootstrap_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The bootstrap stream of one attack: run seed + a stable hash of its name (not Python's salted hash)."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.SeedSequence([seed, digest])


def resample_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) indices drawn with replacement from range(n)."""
    return rng.integers(0, n, size=(n_boot, n), dtype=np.int32 if n < 2**31 else np.int64)


@dataclass(frozen=True)
class SortedScores:
    """One target's scores sorted once, as runs: the run of each member and non-member.

    Distinct scores are levels (0 = highest). Consecutive levels that hold only members (or only
    non-members) are merged into one run: inside such a stretch no operating point can beat the
    stretch's end (members only: same FPR, lower TPR) or the point before it (non-members only:
    same TPR, higher FPR), and no member ties a non-member there, so AUC, advantage and every
    TPR@α are unchanged by the merge, for any resample. Levels holding both stay single runs.
    """

    member_run: np.ndarray  # (n_members,) int64
    nonmember_run: np.ndarray  # (n_nonmembers,) int64
    n_runs: int

    @classmethod
    def build(cls, scores: np.ndarray, member: np.ndarray) -> SortedScores:
        scores = np.asarray(scores, dtype=np.float64)
        member = np.asarray(member, dtype=bool)
        order = np.argsort(-scores, kind="stable")
        s, m = scores[order], member[order]
        level = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])]).astype(np.int64)
        n_levels = int(level[-1]) + 1
        has_m = np.bincount(level, weights=m, minlength=n_levels) > 0
        has_n = np.bincount(level, weights=~m, minlength=n_levels) > 0
        kind = np.where(has_m & has_n, 2, np.where(has_m, 0, 1))  # 0 members only, 1 non-members only, 2 both
        new_run = np.ones(n_levels, dtype=bool)
        new_run[1:] = (kind[1:] != kind[:-1]) | (kind[1:] == 2)
        run_of_level = np.cumsum(new_run) - 1
        run = np.empty(len(s), dtype=np.int64)
        run[order] = run_of_level[level]
        return cls(member_run=run[member], nonmember_run=run[~member], n_runs=int(run_of_level[-1]) + 1)


def weighted_roc_stats(
    sorted_scores: SortedScores, idx_members: np.ndarray, idx_nonmembers: np.ndarray, fprs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC, advantage and TPR at each FPR of every resample, without materialising a resample.

    Parameters
    ----------
    idx_members : (B, n_members) int, each row one resample of the members (indices into them)
    idx_nonmembers : (B, n_nonmembers) int

    Returns
    -------
    auc (B,), advantage (B,), tpr (B, len(fprs)): the same numbers ``attack_metrics`` gives on
    the resampled arrays (the tests check this against it).
    """
    b = idx_members.shape[0]
    n_runs = sorted_scores.n_runs
    n_pos, n_neg = idx_members.shape[1], idx_nonmembers.shape[1]
    offsets = (np.arange(b, dtype=np.int64) * n_runs)[:, None]

    def run_counts(runs: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.bincount((offsets + runs[idx]).ravel(), minlength=b * n_runs).reshape(b, n_runs)

    tp_run = run_counts(sorted_scores.member_run, idx_members)  # (B, L) multiplicities per run
    fp_run = run_counts(sorted_scores.nonmember_run, idx_nonmembers)
    tp = np.cumsum(tp_run, axis=1)
    fp = np.cumsum(fp_run, axis=1)
    # members in a run beat the non-members below it and tie with those in it:
    # Σ tp_run·(n_neg − fp + ½ fp_run) = n_pos·n_neg − Σ tp_run·fp + ½ Σ tp_run·fp_run
    beaten = n_pos * n_neg - np.einsum("ij,ij->i", tp_run, fp) + 0.5 * np.einsum("ij,ij->i", tp_run, fp_run)
    auc = beaten / (n_pos * n_neg)
    advantage = np.maximum((n_neg * tp - n_pos * fp).max(axis=1) / (n_pos * n_neg), 0.0)
    # TPR@α: the last run whose cumulative FP ≤ α·n_neg; rows are offset so one searchsorted serves all
    stride = n_neg + 1
    flat = (fp + (np.arange(b, dtype=np.int64) * stride)[:, None]).ravel()
    out = np.empty((b, len(fprs)))
    rows = np.arange(b)
    for j, a in enumerate(fprs):
        limit = int(np.floor((a + 1e-12) * n_neg))
        k = np.searchsorted(flat, rows * stride + limit, side="right") - rows * n_runs
        out[:, j] = np.where(k > 0, tp[rows, np.maximum(k - 1, 0)] / n_pos, 0.0)
    return auc, advantage, out


def bootstrap_ci(
    scores: Sequence[np.ndarray],
    members: Sequence[np.ndarray],
    fprs: Sequence[float],
    *,
    n_boot: int,
    seed: np.random.SeedSequence | int,
    level: float = 0.95,
    chunk: int = 50,
) -> dict:
    """Percentile bootstrap intervals of the target-averaged AUC, advantage and TPR at each FPR.

    Parameters
    ----------
    scores, members : one (N,) array per target
    n_boot : number of resamples (each redraws every target's members and non-members)
    seed : a SeedSequence (``bootstrap_seed``) or int; the same seed gives the same intervals

    Returns
    -------
    ``{"auc": [lo, hi], "advantage": [lo, hi], "tpr_at_fpr": {key: [lo, hi]}}``
    """
    rng = np.random.default_rng(seed)
    fprs = list(fprs)
    auc = np.zeros(n_boot)
    adv = np.zeros(n_boot)
    tpr = np.zeros((n_boot, len(fprs)))
    for s, m in zip(scores, members, strict=True):
        m = np.asarray(m, dtype=bool)
        ss = SortedScores.build(s, m)
        n_pos, n_neg = int(m.sum()), int((~m).sum())
        for start in range(0, n_boot, chunk):
            nb = min(chunk, n_boot - start)
            a, d, t = weighted_roc_stats(ss, resample_indices(rng, n_pos, nb), resample_indices(rng, n_neg, nb), fprs)
            auc[start : start + nb] += a
            adv[start : start + nb] += d
            tpr[start : start + nb] += t
    k = len(scores)
    auc, adv, tpr = auc / k, adv / k, tpr / k
    q = [50 * (1 - level), 50 * (1 + level)]

    def interval(x: np.ndarray) -> list[float]:
        return [float(v) for v in np.percentile(x, q)]

    return {
        "auc": interval(auc),
        "advantage": interval(adv),
        "tpr_at_fpr": {fpr_key(a): interval(tpr[:, j]) for j, a in enumerate(fprs)},
    }
