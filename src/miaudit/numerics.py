"""Numerics on logits shared by the attacks and the vulnerability analysis: float64, stable at any margin.

Numpy only. Every function takes logits (..., N, C) (any float dtype, possibly memory-mapped) and
works through ``by_records``: cache-sized float64 blocks of records, so a (M, A, N, C) pool is never
copied to float64 whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def logsumexp(z: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log Σ exp(z) along ``axis``, shifted by the maximum; −inf where every entry is −inf.

    A plain numpy version: scipy's (array-API) logsumexp is ~5× slower on (R, N, C) logits.

    Examples
    --------
    >>> float(logsumexp(np.log(np.array([1.0, 3.0]))))
    1.3862943611198906
    """
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(z - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


#: elements per block of logits converted to float64 at a time (2 MB: stays in cache; the
#: full (R, N, C) float64 copy is memory-bound and several times slower on a busy machine)
BLOCK_ELEMENTS = 1 << 18


def by_records(fn: Callable[..., Any], logits: np.ndarray, labels: np.ndarray | None = None) -> Any:
    """Apply ``fn(z, labels)`` to float64 blocks of records (axis −2 of ``logits`` (..., N, C)) and join
    the results along their record axis (the axis after the leading ones). ``fn`` returns an array
    or a tuple of arrays shaped (..., n_block, ...)."""
    z = np.asarray(logits)
    lead, n = z.shape[:-2], z.shape[-2]
    step = max(1, BLOCK_ELEMENTS // max(1, int(np.prod(lead, dtype=np.int64)) * z.shape[-1]))
    parts = []
    for s in range(0, n, step):
        block = np.array(z[..., s : s + step, :], dtype=np.float64)  # a copy: fn may write into it
        parts.append(fn(block, None if labels is None else np.asarray(labels)[s : s + step]))
    if not parts:
        return fn(np.zeros(z.shape, dtype=np.float64), None if labels is None else np.asarray(labels))
    axis = len(lead)
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[i] for p in parts], axis=axis) for i in range(len(parts[0])))
    return np.concatenate(parts, axis=axis)


def _z_y_and_rest(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.broadcast_to(labels[:, None], z.shape[:-1] + (1,))
    z_y = np.take_along_axis(z, idx, axis=-1)[..., 0]
    np.put_along_axis(z, idx, -np.inf, axis=-1)
    return z_y, logsumexp(z, axis=-1)


def true_logit_and_rest(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z_y and logsumexp over j != y, both float64, for logits (..., N, C) and labels (N,).

    Examples
    --------
    >>> z_y, rest = true_logit_and_rest(np.array([[2.0, 0.0, 0.0]]), np.array([0]))
    >>> float(z_y[0]), round(float(rest[0]), 6)
    (2.0, 0.693147)
    """
    return by_records(_z_y_and_rest, logits, labels)


def phi_from(z_y: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """LiRA's φ = z_y − logsumexp_{j≠y} z_j from the two parts of ``true_logit_and_rest``."""
    return z_y - rest


def logp_y_from(z_y: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """log p_y = z_y − logsumexp_j z_j from the two parts of ``true_logit_and_rest``."""
    return z_y - np.logaddexp(z_y, rest)


def scaled_logit(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's stable φ = z_y − logsumexp_{j≠y} z_j (= log p_y − log(1 − p_y)), float64.

    Computed from logits rather than from float32 probabilities plus an epsilon, so it stays
    finite and exact at large margins (Carlini et al. 2022, §IV-B).

    Examples
    --------
    >>> float(scaled_logit(np.array([[2.0, 0.0]]), np.array([0]))[0])
    2.0
    """
    return phi_from(*true_logit_and_rest(logits, labels))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p, (..., N, C) float64.

    Examples
    --------
    >>> np.exp(log_softmax(np.array([[0.0, 0.0]]))).tolist()
    [[0.5, 0.5]]
    """
    return by_records(lambda z, _: z - logsumexp(z, axis=-1, keepdims=True), logits)


def _shifted_exp(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """exp(z − max) with the top entry zeroed, the top index, the max, and the rest's sum (..., N)."""
    top = z.argmax(axis=-1)[..., None]
    m = np.take_along_axis(z, top, axis=-1)
    e = np.exp(z - m)
    np.put_along_axis(e, top, 0.0, axis=-1)
    return e, top, m, e.sum(axis=-1, keepdims=True)


def _log_rest(z: np.ndarray, top: np.ndarray, m: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """log Σ_{j≠top} exp(z_j − max): from ``rest`` where it is normal, exactly where it underflowed."""
    with np.errstate(divide="ignore"):
        out = np.log(rest)
    bad = ~np.isfinite(out[..., 0]) | (rest[..., 0] < 1e-300)
    if bad.any():
        zb = np.array(z[bad])
        np.put_along_axis(zb, top[bad], -np.inf, axis=-1)
        out[bad] = logsumexp(zb, axis=-1, keepdims=True) - m[bad]
    return out


def log_one_minus_softmax(logits: np.ndarray) -> np.ndarray:
    """log(1 − p_j) for every class j, (..., N, C) float64, finite at any margin.

    For the top class 1 − p_j is the softmax mass of the other classes, summed directly
    (log rest − log(1 + rest), with exp shifted by the top logit), never 1 minus a rounded
    probability; every other class has p_j ≤ 1/2, where log1p(−p_j) is exact. One exp pass.
    """

    def block(z: np.ndarray, _: Any) -> np.ndarray:
        e, top, m, rest = _shifted_exp(z)
        out = np.log1p(-e / (1.0 + rest))
        np.put_along_axis(out, top, _log_rest(z, top, m, rest) - np.log1p(rest), axis=-1)
        return out

    return by_records(block, logits)


def sorted_top_log_odds(logits: np.ndarray, k: int) -> np.ndarray:
    """Log-odds log p − log(1 − p) of the ``k`` largest softmax probabilities, descending, (..., N, k) float64.

    A monotone transform of Shokri et al.'s sorted probability vector that stays resolved
    where probabilities round to 1: the top entry is z_max − log(Σ_{j≠max} exp z_j), the others
    log p − log1p(−p) (each ≤ 1/2). One exp pass; only the top k entries get logs.
    """
    return by_records(lambda z, _: _sorted_top_log_odds(z, k), logits)


def _sorted_top_log_odds(z: np.ndarray, k: int) -> np.ndarray:
    k = min(k, z.shape[-1])
    e, top, m, rest = _shifted_exp(z)
    first = -_log_rest(z, top, m, rest)  # log p_top − log(1 − p_top) = −log(rest)
    if k == 1:
        return first
    np.put_along_axis(z, top, -np.inf, axis=-1)  # z is this block's own copy
    nxt = -np.sort(np.partition(-z, k - 2, axis=-1)[..., : k - 1], axis=-1)  # next k−1 logits, descending
    logp = nxt - m - np.log1p(rest)  # exact log p_j from logits, finite at any margin
    return np.concatenate([first, logp - np.log1p(-np.exp(logp))], axis=-1)
