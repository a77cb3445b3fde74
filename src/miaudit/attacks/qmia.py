"""Quantile-regression membership inference (QMIA; Bertran et al., NeurIPS 2023).

A regressor fitted on population records (never trained on) learns, from a record's features and
label, a high quantile q̂(x, y) of the target's score on non-members. A record whose score lies
above its own predicted quantile is flagged; the membership score is the margin s − q̂, so the
ROC over thresholds on the margin gives every operating point. It needs no reference model, only
the target and the population, which makes it the strong attack with ``references: none``.
A target audit runs it by default; a pool run when ``audit.attacks`` names it.

Choices (the paper fits a deep quantile network on images; this is its small-data form):

- score s = LiRA's scaled logit φ = z_y − logsumexp_{j≠y} z_j of the target (the paper's hinge
  score), averaged over augmented queries;
- regressor: scikit-learn's ``HistGradientBoostingRegressor(loss="quantile")`` on the record's
  features (flattened; reduced by a seeded PCA to ``pca_components`` when wider) with the label
  as a categorical feature. Gradient boosting needs no tuning of a network on a few thousand
  population records and fits in seconds on CPU;
- quantile 1 − α with α = 0.05 by default: a 99% quantile from a few thousand records rests on
  a few dozen points above it, too few to learn a per-record threshold.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import AttackInput, NotApplicable, register_attack
from miaudit.numerics import scaled_logit

#: fewest population records the regressor is fitted on
MIN_POPULATION = 50


class QmiaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quantile: float = Field(0.95, gt=0.5, lt=1.0, description="quantile of the non-members' score the regressor predicts")
    pca_components: int = Field(32, ge=1, description="features wider than this are reduced by PCA (fitted on population)")
    max_iter: int = Field(100, ge=1, description="boosting iterations")
    max_leaf_nodes: int = Field(15, ge=2, description="leaves per tree (small: the population is small)")


def _design(x: np.ndarray, labels: np.ndarray, pca) -> np.ndarray:  # noqa: ANN001
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if pca is not None:
        flat = pca.transform(flat)
    return np.column_stack([flat, labels.astype(np.float64)])


def qmia_scores(
    target_scores: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    pop_scores: np.ndarray,
    pop_features: np.ndarray,
    pop_labels: np.ndarray,
    *,
    quantile: float,
    pca_components: int,
    max_iter: int,
    max_leaf_nodes: int,
    seed: int,
) -> np.ndarray:
    """Margins s − q̂(x, y) (N,) of records above the quantile regressed on the population.

    Parameters
    ----------
    target_scores : (N,) the target's score on the audited records (higher = more member-like)
    features : (N, ...) the audited records; labels (N,) int
    pop_scores, pop_features, pop_labels : the same for population records (non-members)
    quantile, pca_components, max_iter, max_leaf_nodes : as in ``QmiaParams`` (its defaults are the attack's)
    seed : of the PCA and the regressor
    """
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingRegressor

    pop_flat = np.asarray(pop_features, dtype=np.float32).reshape(len(pop_features), -1)
    pca = None
    if pop_flat.shape[1] > pca_components:
        pca = PCA(n_components=min(pca_components, len(pop_flat)), random_state=seed).fit(pop_flat)
    n_classes = int(max(np.max(labels, initial=0), np.max(pop_labels, initial=0))) + 1
    train = _design(pop_features, np.asarray(pop_labels), pca)  # (P, D + 1): features, then the label
    categorical = np.zeros(train.shape[1], dtype=bool)
    categorical[-1] = n_classes <= 255  # HistGradientBoosting's limit on categories
    reg = HistGradientBoostingRegressor(
        loss="quantile", quantile=quantile, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
        categorical_features=categorical, random_state=seed,
    )
    reg.fit(train, np.asarray(pop_scores, dtype=np.float64))
    q = reg.predict(_design(features, np.asarray(labels), pca))
    return np.asarray(target_scores, dtype=np.float64) - q


@register_attack(
    "qmia",
    description="quantile regression on population records: margin above the predicted non-member quantile "
    "(Bertran et al. 2023)",
    params=QmiaParams,
    knowledge="none",
    # opt-in for pools (audit.attacks: [..., qmia]): by default it ran first by TPR@1% on the tiny test pool
    # and, being calibrated per record, made the vulnerability analysis pick a less outlier-driven set
    pool_default=False,
)
def qmia_attack(inp: AttackInput, quantile: float, pca_components: int, max_iter: int, max_leaf_nodes: int) -> np.ndarray:
    pop = inp.population
    if pop is None or pop.features is None or inp.features is None:
        raise NotApplicable("needs the population and audited records' features (runs from `miaudit run`)")
    if len(pop.labels) < MIN_POPULATION:
        raise NotApplicable(f"needs at least {MIN_POPULATION} population records, got {len(pop.labels)}")
    s = scaled_logit(inp.target, inp.labels).mean(axis=0)  # (A, N) -> (N,)
    s_pop = scaled_logit(pop.target, pop.labels).mean(axis=0)  # (P,)
    return qmia_scores(s, inp.features, inp.labels, s_pop, pop.features, pop.labels, quantile=quantile,
                       pca_components=pca_components, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes, seed=inp.seed)
