"""Inference-time defences: transforms of the target's logits.

- ``logit-reweighting`` (the study's targeted defence): pull each output towards the mean
  training-set logits of its predicted class.
- ``label-only``: release only the top-1 label.
- ``top-k``: release the k largest probabilities.
- ``temperature``: release softmax(z / T).

Every transform keeps the predicted class, so accuracy is unchanged (``logit-reweighting``
enforces it where the study's formula alone would not; see its Notes).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import logsumexp

from miaudit.defences._registry import OutputDefence, register_defence

FORBID = ConfigDict(extra="forbid", frozen=True)

#: logit gap between the released label and every other class in label-only output; large enough
#: that softmax puts 1 − (C−1)·e⁻³⁰ ≈ 1 on the label, small enough that every score stays finite
LABEL_ONLY_GAP = 30.0


def class_centroids(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """c_k = mean logits (float64) of the records of true class k; NaN rows for classes without records.

    Examples
    --------
    >>> class_centroids(np.array([[2.0, 0.0], [4.0, 0.0]]), np.array([0, 0]), 2).tolist()
    [[3.0, 0.0], [nan, nan]]
    """
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    sums = np.zeros((n_classes, z.shape[-1]))
    np.add.at(sums, labels, z)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def reweight_logits(logits: np.ndarray, centroids: np.ndarray, w: float) -> np.ndarray:
    """The study's logit reweighting, exactly: z' = s·z + (1 − s)·c_k̂ with s = w·cos(z, c_k̂), k̂ = argmax z.

    Vectorised over the leading axes of ``logits`` (..., C); float64 out. A zero vector has
    cosine 0 with anything. Classes whose centroid is undefined (NaN) give NaN rows here;
    :class:`LogitReweighting` leaves those outputs unchanged.

    Examples
    --------
    >>> c = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> reweight_logits(np.array([[4.0, 0.0]]), c, 0.5).tolist()  # cos = 1, s = 0.5
    [[3.0, 0.0]]
    """
    z = np.asarray(logits, dtype=np.float64)
    c = centroids[z.argmax(axis=-1)]  # (..., C)
    norm = np.linalg.norm(z, axis=-1) * np.linalg.norm(c, axis=-1)
    dot = (z * c).sum(axis=-1)
    cos = np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)
    s = (w * cos)[..., None]
    return s * z + (1.0 - s) * c


class LogitReweightingParams(BaseModel):
    model_config = FORBID

    w: float = Field(0.1, ge=0, le=1, description="weight of the query's own logits (the study: 0.1)")
    preserve_argmax: bool = Field(
        True, description="restore the predicted class where the formula alone would change it (see Notes)"
    )


@register_defence(
    "logit-reweighting", params=LogitReweightingParams,
    description="pull outputs towards the predicted class's mean training logits (the study's defence)",
)
class LogitReweighting(OutputDefence):
    """Logit reweighting (Khalil et al., "Membership Inference Attacks Beyond Overfitting", §defences).

    Parameters
    ----------
    w : float, default 0.1
        Weight of the query's own logits: s = w·cos(z, c_k̂).
    preserve_argmax : bool, default True

    Attributes
    ----------
    centroids_ : (C, C) float64, mean training logits per true class (NaN rows for empty classes)

    Notes
    -----
    z' = s·z + (1 − s)·c_k̂ is a convex combination of z and c_k̂ when 0 ≤ s ≤ 1, so it keeps
    the class k̂ whenever c_k̂'s own argmax is k̂. Two cases escape that: a negative cosine
    (s < 0: the output is pushed past c_k̂, away from z) and a class whose mean training logits
    favour another class (a poorly fitted class, e.g. under DP-SGD). With ``preserve_argmax``
    the transform then swaps the entries of k̂ and of the new argmax, so the released values
    are the formula's and the predicted class is the model's. ``reweight_logits`` is the bare
    formula.
    """

    def __init__(self, w: float = 0.1, preserve_argmax: bool = True) -> None:
        self.w = w
        self.preserve_argmax = preserve_argmax

    def fit(self, train_logits: np.ndarray, train_labels: np.ndarray) -> LogitReweighting:
        z = np.asarray(train_logits)
        self.centroids_ = class_centroids(z, train_labels, z.shape[-1])
        return self

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits)
        k = z.argmax(axis=-1)
        out = reweight_logits(z, self.centroids_, self.w)
        undefined = np.isnan(out).any(axis=-1)
        if undefined.any():
            out[undefined] = z[undefined]
        out = out.astype(z.dtype, copy=False)
        if self.preserve_argmax:
            swap_argmax(out, k)
        return out


def swap_argmax(out: np.ndarray, k: np.ndarray) -> int:
    """In place: where argmax(out) ≠ k, swap the two entries so that k is the argmax; returns how many rows.

    >>> a = np.array([[1.0, 3.0], [5.0, 0.0]]); swap_argmax(a, np.array([0, 0])); a.tolist()
    1
    [[3.0, 1.0], [5.0, 0.0]]
    """
    j = out.argmax(axis=-1)
    bad = j != k
    if bad.any():
        rows = np.nonzero(bad)
        kk, jj = k[rows], j[rows]
        hi = out[(*rows, jj)]
        out[(*rows, jj)] = out[(*rows, kk)]
        out[(*rows, kk)] = hi
        # a tie (equal values) survives the swap: lift k's entry by one ulp
        tied = out.argmax(axis=-1)[rows] != kk
        if tied.any():
            r = tuple(ix[tied] for ix in rows)
            out[(*r, kk[tied])] = np.nextafter(out[(*r, kk[tied])], np.inf)
    return int(bad.sum())


class NoDefenceParams(BaseModel):
    model_config = FORBID


@register_defence("label-only", params=NoDefenceParams, description="release only the predicted label (top-1)")
class LabelOnly(OutputDefence):
    """Release only the top-1 label, as logits: 0 for the label, −``LABEL_ONLY_GAP`` for every other class."""

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits)
        out = np.full(z.shape, -LABEL_ONLY_GAP, dtype=z.dtype)
        np.put_along_axis(out, z.argmax(axis=-1)[..., None], 0.0, axis=-1)
        return out


class TopKParams(BaseModel):
    model_config = FORBID

    k: int = Field(1, ge=1, description="probabilities released per query (the k largest)")


@register_defence("top-k", params=TopKParams, description="release only the k largest probabilities")
class TopK(OutputDefence):
    """Release the k largest probabilities; the attacker spreads the remaining mass evenly.

    Output: log p_j for the k released classes and log((1 − Σ released) / (C − k)) for the
    others — the least informative completion of what was released (all in float64, the rest
    mass computed as the log-sum-exp of the hidden logits, so it stays finite and exact).
    """

    def __init__(self, k: int = 1) -> None:
        self.k = k

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        c = z.shape[-1]
        if self.k >= c:
            return (z - logsumexp(z, axis=-1, keepdims=True)).astype(np.asarray(logits).dtype)
        logp = z - logsumexp(z, axis=-1, keepdims=True)
        top = np.argpartition(-z, self.k - 1, axis=-1)[..., : self.k]
        released = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(released, top, True, axis=-1)
        rest = logsumexp(np.where(released, -np.inf, logp), axis=-1, keepdims=True) - np.log(c - self.k)
        out = np.where(released, logp, rest)
        return out.astype(np.asarray(logits).dtype)


class TemperatureParams(BaseModel):
    model_config = FORBID

    temperature: float = Field(2.0, gt=0, description="T > 1 flattens the released probabilities")


@register_defence("temperature", params=TemperatureParams, description="release softmax(z / T)")
class Temperature(OutputDefence):
    """Release softmax(z / T) (as the logits z / T)."""

    def __init__(self, temperature: float = 2.0) -> None:
        self.temperature = temperature

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits)
        return (z / self.temperature).astype(z.dtype, copy=False)
