"""Attacks that threshold one per-record statistic of the target's output.

The score is the statistic oriented so that higher = member; the threshold itself is swept by
the metrics (ROC), so a population attack needs no calibration data: any threshold an attacker
could set from population records is one point of that ROC. All four read the plain query
(``target[0]``) only.

- ``loss`` (Yeom et al. 2018): −loss.
- ``confidence``: p_y. A monotone transform of −loss, so it ranks records identically except
  where p_y rounds to 1.0 in float64 (margins beyond ~37), which ties those records.
- ``entropy``: −H(p) = Σ_j p_j log p_j; low entropy ⇒ member (Salem et al. 2019).
- ``modified-entropy`` (Song & Mittal 2021, §4.1): Mentr = −(1−p_y) log p_y − Σ_{j≠y} p_j log(1−p_j);
  Mentr grows with the loss, so the score is −Mentr.

``calibrated-loss`` (Watson et al. 2022) subtracts each record's difficulty: score =
−(loss_target − mean loss over the OUT references), so it needs at least one OUT reference
per record (offline knowledge).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import AttackInput, register_attack, require_references, select_refs
from miaudit.numerics import by_records, log_one_minus_softmax, log_softmax


@register_attack("loss", description="global threshold on the target's loss (Yeom et al. 2018)", knowledge="none")
def loss_attack(inp: AttackInput) -> np.ndarray:
    """Score = −loss of the target on the plain query; members have lower loss."""
    return inp.target_stat("logp_y")[0]


@register_attack("confidence", description="global threshold on p_y, the target's true-class probability", knowledge="none")
def confidence_attack(inp: AttackInput) -> np.ndarray:
    """Score = p_y (float64, from logits)."""
    return np.exp(inp.target_stat("logp_y")[0])


@register_attack("entropy", description="global threshold on the entropy of the target's softmax (low ⇒ member)", knowledge="none")
def entropy_attack(inp: AttackInput) -> np.ndarray:
    """Score = −H(p) = Σ_j p_j log p_j."""
    def block(z: np.ndarray, _: object) -> np.ndarray:  # (n, C) -> (n,)
        logp = log_softmax(z)
        return (np.exp(logp) * logp).sum(axis=-1)

    return by_records(block, inp.target[0])


def modified_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal's Mentr(p, y) = −(1−p_y) log p_y − Σ_{j≠y} p_j log(1−p_j), (..., N) float64.

    Every log(1 − p) comes from logits (``log_one_minus_softmax``), so Mentr stays finite and
    resolved at any margin.

    Examples
    --------
    >>> round(float(modified_entropy(np.log(np.array([[0.5, 0.25, 0.25]])), np.array([0]))[0]), 6)
    0.490415
    """
    return by_records(_modified_entropy_block, logits, labels)  # cache-sized blocks: ~2x faster at 200k x 100


def _modified_entropy_block(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    logp = log_softmax(logits)
    log1mp = log_one_minus_softmax(logits)
    n = logp.shape[-2]
    onehot = np.zeros(logp.shape[-2:], dtype=bool)
    onehot[np.arange(n), labels] = True
    p = np.exp(logp)
    own = -np.exp(log1mp) * logp  # −(1 − p_j) log p_j, used for j = y
    other = -p * log1mp  # −p_j log(1 − p_j), used for j ≠ y
    # select, then sum: subtracting the j = y term from a full sum would cancel small Mentr to 0
    return np.where(onehot, own, other).sum(axis=-1)


@register_attack(
    "modified-entropy", description="global threshold on Song & Mittal's modified entropy (low ⇒ member)", knowledge="none"
)
def modified_entropy_attack(inp: AttackInput) -> np.ndarray:
    """Score = −Mentr; Mentr is low for confident, correct predictions."""
    return -modified_entropy(inp.target[0], inp.labels)


class CalibratedLossParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_refs: int | None = Field(None, ge=1, description="use at most this many OUT references per record (None = all)")


@register_attack(
    "calibrated-loss",
    description="target loss minus the record's mean loss under OUT references (Watson et al. 2022)",
    params=CalibratedLossParams,
    knowledge="offline",
)
def calibrated_loss_attack(inp: AttackInput, *, max_refs: int | None) -> np.ndarray:
    """Score = −(loss_target − mean_{OUT refs} loss), plain query only."""
    outs = select_refs(inp.refs_out, max_refs)  # (R, N)
    require_references({"OUT": outs})
    logp_t, logp_r = inp.split_stat("logp_y")  # (A, N), (R, A, N)
    ref_loss = out_mean(-logp_r[:, 0], outs)
    return -(-logp_t[0] - ref_loss)


def out_mean(values: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Per-record mean of ``values`` (R, ..., N) over the references ``use`` (R, N) marks, (..., N)
    float64 (NaN where a record has none)."""
    w = use.reshape(use.shape[:1] + (1,) * (values.ndim - 2) + use.shape[1:]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * values).sum(axis=0) / use.sum(axis=0)
