"""The verdict policy: which FPR is the headline, and what a TPR there means in words.

Reading guide: the headline rate is TPR at 1% FPR (:data:`miaudit.results.HEADLINE_FPR`) of the
strongest attack (``miaudit.results.strongest``: the highest TPR there, ties by AUC). The leakage
level compares it with chance, which is the FPR itself (a random guess flags 1% of members at 1%
FPR): *low* below 2× chance, *elevated* from 2× to 10×, *high* from 10× (:data:`LEVELS`). A level
above low whose interval still reaches chance is said to be uncertain (:func:`chance_like`).

The thresholds of the per-record finding ("vulnerable records are outliers") are here too
(:data:`OUTLIER_AUROC`), so every judgement the page makes is stated in one place.
"""

from __future__ import annotations

import math

from miaudit.metrics import fpr_key
from miaudit.report import format as fmt
from miaudit.results import HEADLINE_FPR

#: leakage level from TPR at the headline FPR in multiples of chance (= that FPR): below 2x low,
#: below 10x elevated, else high. 2x: clearly above a random guess; 10x: one flag in ten is a
#: false alarm at most, so being flagged says something about almost every record flagged.
LEVELS: tuple[tuple[str, float], ...] = (("low", 2.0), ("elevated", 10.0), ("high", math.inf))
LEVEL_TITLES = {"low": "Low leakage", "elevated": "Elevated leakage", "high": "High leakage"}
#: a vulnerable set is called "outliers" when the best outlier measure orders a vulnerable record
#: above a random one at least this often (AUROC; 0.5 = no difference)
OUTLIER_AUROC = (0.6, 0.7)
#: a train-test accuracy gap this large (in shares) is pointed out as overfitting beside the verdict
LARGE_GAP = 0.10


def level_of(tpr: float | None, alpha: float) -> str:
    """``low`` / ``elevated`` / ``high``: TPR at FPR α against chance (= α), by :data:`LEVELS`.

    >>> level_of(0.077, 0.01), level_of(0.015, 0.01), level_of(0.25, 0.01)
    ('elevated', 'low', 'high')
    """
    if tpr is None or alpha <= 0:
        return "low"
    ratio = tpr / alpha
    return next(name for name, upper in LEVELS if ratio < upper)


def level_scale(alpha: float) -> list[dict]:
    """The thresholds of the levels at FPR α, for the legend on the page."""
    out, lo = [], 0.0
    for name, upper in LEVELS:
        hi = upper * alpha
        rng = f"below {fmt.fpr_label(hi)}" if lo == 0 else (
            f"{fmt.fpr_label(lo)} and above" if math.isinf(hi) else f"{fmt.fpr_label(lo)} to {fmt.fpr_label(hi)}")
        out.append({"level": name, "title": LEVEL_TITLES[name], "range": rng})
        lo = hi
    return out


def chance_like(tpr: float | None, ci: list | None, alpha: float) -> bool:
    """Whether a TPR at FPR α is not shown to beat chance: its interval's lower end (else the
    point estimate) is at most α, or there is no estimate at all.

    >>> chance_like(0.12, [0.004, 0.25], 0.01), chance_like(0.077, [0.0736, 0.0818], 0.01)
    (True, False)
    """
    lo = ci[0] if ci and ci[0] is not None else tpr
    return lo is None or lo <= alpha


def headline_key(attacks: dict) -> str | None:
    """The FPR key of the headline: 1% when measured, else the closest positive FPR measured."""
    keys = {k for r in attacks.values() for k in r.get("tpr_at_fpr", {})}
    if not keys:
        return None
    want = fpr_key(HEADLINE_FPR)
    if want in keys:
        return want
    positive = [k for k in keys if float(k) > 0]
    if not positive:
        return max(keys, key=float)
    return min(positive, key=lambda k: (abs(math.log(float(k) / HEADLINE_FPR)), float(k)))


def outlier_strength(auroc: float) -> str:
    """How strongly the best outlier measure separates the vulnerable set: ``outliers``, ``tend``, ``not``.

    >>> outlier_strength(0.7), outlier_strength(0.65), outlier_strength(0.59)
    ('outliers', 'tend', 'not')
    """
    return "outliers" if auroc >= OUTLIER_AUROC[1] else ("tend" if auroc >= OUTLIER_AUROC[0] else "not")
