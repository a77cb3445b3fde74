"""Membership-inference attacks: plain functions over signals, one signature, a registry by name.

Every attack is ``fn(inp: AttackInput, **params) -> (N,) float64`` (higher = member) and is
registered by name in ``ATTACKS``. ``score_attack`` runs one by name on plain arrays.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import ATTACKS, AttackInput, AttackSpec, NotApplicable, PopSignals, make_input, register_attack
from miaudit.attacks.pool_stats import PoolStats

from miaudit.attacks import label_only, lira, qmia, rmia, shokri, threshold  # noqa: F401  isort: skip
from miaudit.attacks.label_only import label_only_augment, label_only_gap  # noqa: E402
from miaudit.attacks.lira import lira_offline, lira_online  # noqa: E402
from miaudit.attacks.rmia import rmia_offline, rmia_online  # noqa: E402
from miaudit.attacks.shokri import shokri_attack  # noqa: E402
from miaudit.attacks.threshold import (  # noqa: E402
    calibrated_loss_attack,
    confidence_attack,
    entropy_attack,
    loss_attack,
    modified_entropy_attack,
)


def _with_queries(logits: np.ndarray | None) -> np.ndarray | None:
    """(M, N, C) -> (M, 1, N, C); (M, A, N, C) unchanged."""
    if logits is None:
        return None
    logits = np.asarray(logits)
    return logits[:, None] if logits.ndim == 3 else logits


def score_attack(
    name: str,
    logits: np.ndarray,
    in_mask: np.ndarray,
    labels: np.ndarray,
    target: int = 0,
    *,
    population_logits: np.ndarray | None = None,
    population_labels: np.ndarray | None = None,
    params: dict | None = None,
    is_image: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Scores (N,) float64 of attack ``name`` against model ``target`` of a pool, from plain arrays.

    Parameters
    ----------
    logits : (M, N, C) or (M, A, N, C) float, every model's logits (A augmented queries)
    in_mask : (M, N) bool; the target's row is withheld from the attack
    labels : (N,) int
    population_logits : (M, P, C) or (M, A, P, C), optional (RMIA's z)
    params : the attack's options, e.g. ``{"gamma": 1.0}``

    Examples
    --------
    >>> z = np.array([[[3.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])  # 2 models, 2 records
    >>> score_attack("label-only-gap", z, np.array([[1, 0], [0, 1]], bool), np.array([0, 0])).tolist()
    [1.0, 0.0]
    """
    inp = make_input(
        _with_queries(logits), np.asarray(in_mask, dtype=bool), np.asarray(labels), target,
        population_logits=_with_queries(population_logits), population_labels=population_labels,
        is_image=is_image, seed=seed,
    )
    return ATTACKS.get(name)(inp, params)


__all__ = [
    "ATTACKS",
    "AttackInput",
    "AttackSpec",
    "NotApplicable",
    "PoolStats",
    "PopSignals",
    "calibrated_loss_attack",
    "confidence_attack",
    "entropy_attack",
    "label_only_augment",
    "label_only_gap",
    "lira_offline",
    "lira_online",
    "loss_attack",
    "make_input",
    "modified_entropy_attack",
    "register_attack",
    "rmia_offline",
    "rmia_online",
    "score_attack",
    "shokri_attack",
]
