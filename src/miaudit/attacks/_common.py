"""Quantities shared by several attacks, computed once and in float64."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def true_logit_and_rest(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_y and logsumexp over j != y, both float64, for logits (..., N, C) and labels (N,)."""
    z = np.asarray(logits, dtype=np.float64)
    n, c = z.shape[-2], z.shape[-1]
    onehot = np.zeros((n, c), dtype=bool)
    onehot[np.arange(n), labels] = True
    z_y = np.take_along_axis(z, np.broadcast_to(labels[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]
    rest = np.where(onehot, -np.inf, z)
    return z_y, logsumexp(rest, axis=-1)


def scaled_logit(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's stable φ = z_y − logsumexp_{j≠y} z_j (= log p_y − log(1 − p_y)), float64.

    Computed from logits rather than from float32 probabilities plus an epsilon, so it stays
    finite and exact at large margins (Carlini et al. 2022, §IV-B).

    Examples
    --------
    >>> float(scaled_logit(np.array([[2.0, 0.0]]), np.array([0]))[0])
    2.0
    """
    z_y, rest = true_logit_and_rest(logits, labels)
    return z_y - rest


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    return z - logsumexp(z, axis=-1, keepdims=True)


def true_class_logprob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p_y, float64, for logits (..., N, C)."""
    z_y, rest = true_logit_and_rest(logits, labels)
    return z_y - np.logaddexp(z_y, rest)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-record loss −log p_y (..., N), float64."""
    return -true_class_logprob(logits, labels)
