"""Shokri et al.'s shadow-model attack ("Membership Inference Attacks Against Machine Learning
Models", S&P 2017, §V): per-class attack classifiers trained on shadow models' outputs.

The shadow models are the reference models, whose membership is known. For each class c, a
classifier learns IN vs OUT from the shadows' outputs on the audit records of class c (every
shadow contributes every such record, labelled by its own membership); the target's records
of class c are then scored by that classifier. Score = the classifier's log-odds of "member",
a monotone transform of its member probability that does not round to 1.

Features: the top-k softmax probabilities of the plain query, sorted in decreasing order
(the paper sorts the whole vector), as log-odds log p − log(1 − p) computed from logits so
they stay resolved where p rounds to 1. k = 3 by default: Salem et al. (ML-Leaks, NDSS 2019,
§III) found the top three posteriors attack as well as the full vector, and with 100 classes
the tail is ~97 near-zero numbers that only slow the classifiers and let them overfit.

Classifiers: scikit-learn, standardised features, one per class, fitted inside the call
(an attack does no other training). ``logistic`` (default: L2 with C = 1, Newton–Cholesky,
deterministic) takes ~2 ms per class, so 100 classes × 8 targets stay within a few seconds; ``boosting`` (histogram gradient boosting, seeded)
is non-linear and slower. A class whose shadow rows are all IN or all OUT, or fewer than
``min_rows``, is scored by one classifier fitted on the rows of all such classes together.
A class with more than ``max_rows_per_class`` shadow rows (records of the class × shadows)
is fitted on a seeded sample of that many: a 3-feature logistic model is settled long before
(200k records × 63 shadows would otherwise mean 126k rows per class, per target).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import AttackInput, NotApplicable, register_attack, require_references
from miaudit.numerics import sorted_top_log_odds


class ShokriParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(3, ge=1, description="sorted top-k probabilities as features; 3 as in ML-Leaks (Salem et al. 2019)")
    classifier: Literal["logistic", "boosting"] = Field("logistic", description="per-class attack model (scikit-learn)")
    min_rows: int = Field(20, ge=2, description="fewer shadow rows in a class: use the all-class classifier")
    max_rows_per_class: int | None = Field(
        5000, ge=2, description="fit each class's classifier on at most this many shadow rows, a seeded sample (None = all)"
    )


def _make_classifier(kind: str, seed: int):  # noqa: ANN202
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        # Newton–Cholesky: ~2 ms for a few thousand rows × 3 features (lbfgs in a pipeline: ~2× that)
        return LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=100)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=50, max_leaf_nodes=8, early_stopping=False, random_state=seed)


def _fit_score(kind: str, seed: int, x: np.ndarray, y: np.ndarray, x_target: np.ndarray) -> np.ndarray:
    """Fit one attack classifier on standardised shadow features; the target rows' member log-odds."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    clf = _make_classifier(kind, seed).fit((x - mu) / sd, y)
    xt = (x_target - mu) / sd
    if hasattr(clf, "decision_function"):
        return np.asarray(clf.decision_function(xt), dtype=np.float64)
    p = np.clip(clf.predict_proba(xt)[:, 1], 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


@register_attack(
    "shokri",
    description="shadow-model attack: per-class classifiers on sorted top-k probabilities (Shokri et al. 2017)",
    params=ShokriParams,
    knowledge="online",
)
def shokri_attack(
    inp: AttackInput, *, top_k: int, classifier: str, min_rows: int, max_rows_per_class: int | None
) -> np.ndarray:
    """Score = the class's attack classifier's member log-odds for the target's output."""
    # shadow rows: (reference, record) pairs in the record's reference sets (``reference_sets``)
    used = inp.refs_in | inp.refs_out  # (R, N)
    require_references({"shadow (reference)": used})
    # plain query only; computed once per pool and shared by every target
    feats_t, feats_r = inp.split_stat(f"shokri-top{top_k}", lambda z, _: sorted_top_log_odds(z[0], top_k))
    # feats_t: (N, k), feats_r: (R, N, k)
    y_all = inp.refs_in[used]
    if y_all.all() or not y_all.any():
        raise NotApplicable("the shadow models' records are all IN or all OUT; nothing to learn from")
    rng = np.random.default_rng(np.random.SeedSequence([inp.seed, 0x5_40C1]))
    scores = np.empty(inp.n_records, dtype=np.float64)
    fallback: list[np.ndarray] = []
    for c in np.unique(inp.labels):
        idx = np.flatnonzero(inp.labels == c)
        x, y = feats_r[:, idx][used[:, idx]], inp.refs_in[:, idx][used[:, idx]]
        if max_rows_per_class is not None and len(y) > max_rows_per_class:
            keep = np.sort(rng.choice(len(y), max_rows_per_class, replace=False))
            x, y = x[keep], y[keep]
        if len(y) < min_rows or y.all() or not y.any():
            fallback.append(idx)
            continue
        scores[idx] = _fit_score(classifier, inp.seed, x, y, feats_t[idx])
    if fallback:
        idx = np.concatenate(fallback)
        x, y = feats_r[:, idx][used[:, idx]], inp.refs_in[:, idx][used[:, idx]]
        scores[idx] = _fit_score(classifier, inp.seed, x, y, feats_t[idx])
    return scores
