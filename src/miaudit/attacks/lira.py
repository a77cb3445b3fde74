"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First
Principles", S&P 2022, §IV).

Per record, Gaussians are fitted to the scaled logit φ over the reference models where the
record is IN (μ_in, σ_in) and OUT (μ_out, σ_out), separately for each augmented query.

- online: score = log N(φ_t; μ_in, σ_in²) − log N(φ_t; μ_out, σ_out²)
- offline: score = log Pr[Z ≤ φ_t] − log Pr[Z > φ_t], Z ~ N(μ_out, σ_out²): one-sided, large
  φ_t = member (the log-odds of the paper's Pr[Z ≤ φ_t]: the same order, and no ties where
  that probability rounds to 1)

With several queries the per-query scores are averaged (paper §IV-C). The IN and OUT
references of a record are ``AttackInput.refs_in`` / ``refs_out`` (``attacks.base.reference_sets``:
with the balanced pool, M/2 − 1 per side whatever the target's membership). ``max_refs`` keeps only
the first k of those per record on each side (reference order), to study small budgets
("LiRA offline with one reference" is ``lira-offline-fixed`` with ``max_refs: 1``). Choices made here:
means are arithmetic means (the reference code uses the median); per-record σ is the
unbiased standard deviation with a floor of ``SIGMA_FLOOR``; the fixed-variance σ is the
*pooled* unbiased residual standard deviation over all records and queries, separately for
IN and OUT (the reference code takes the global standard deviation of the raw IN values
for both, which mixes between-record spread into σ; we fall back to that spread only when
every record has a single reference on a side, which leaves no residual).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import norm

from miaudit.attacks.base import AttackInput, register_attack, require_references, select_refs

SIGMA_FLOOR = 1e-3


class LiraParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fixed_variance: bool = Field(False, description="one σ shared over records (better with few references)")
    max_refs: int | None = Field(
        None, ge=1, description="use at most this many references per record on each side, first in order (None = all)"
    )


def _require_fit(sides: dict[str, np.ndarray], fixed_variance: bool) -> None:
    """A per-record σ needs 2 references per record on each side used, a pooled σ 1."""
    if fixed_variance:
        require_references(sides, per_side=1, advice="; use a larger pool")
    else:
        require_references(sides, per_side=2, advice="; use a larger pool or the fixed-variance variant")


def gaussian_fit(phi: np.ndarray, mask: np.ndarray, *, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Masked per-record mean and standard deviation of φ (every record has the references
    ``_require_fit`` asks for: 1 per record, 2 for a per-record σ).

    Parameters
    ----------
    phi : (R, A, N) float64 scaled logits of the references
    mask : (R, N) bool, which references to use for each record

    Returns
    -------
    mu, sigma : (A, N) float64; with ``fixed_variance`` sigma is one pooled value broadcast.
    """
    w = mask[:, None, :].astype(np.float64)  # (R, 1, N)
    count = w.sum(axis=0)  # (1, N)
    mu = (w * phi).sum(axis=0) / count  # (A, N)
    sq = (w * (phi - mu) ** 2).sum(axis=0)  # (A, N)
    if fixed_variance:
        dof = float((count - 1).sum()) * phi.shape[1]
        if dof > 0:
            pooled = float(np.sqrt(sq.sum() / dof))
        else:  # one reference per record leaves no residual: use the spread of the values, as the reference code
            pooled = float(phi[np.broadcast_to(mask[:, None, :], phi.shape)].std())
        sigma = np.full_like(mu, max(pooled, SIGMA_FLOOR))
    else:
        sigma = np.maximum(np.sqrt(sq / (count - 1)), SIGMA_FLOOR)
    return mu, sigma


def lira_online(inp: AttackInput, *, fixed_variance: bool, max_refs: int | None) -> np.ndarray:
    """Online LiRA: log-likelihood ratio of φ_t under the record's IN and OUT Gaussians, mean over queries."""
    ins, outs = select_refs(inp.refs_in, max_refs), select_refs(inp.refs_out, max_refs)
    _require_fit({"IN": ins, "OUT": outs}, fixed_variance)
    phi_t, phi_r = inp.split_stat("phi")  # (A, N), (R, A, N)
    mu_in, sd_in = gaussian_fit(phi_r, ins, fixed_variance=fixed_variance)
    mu_out, sd_out = gaussian_fit(phi_r, outs, fixed_variance=fixed_variance)
    score = norm.logpdf(phi_t, mu_in, sd_in) - norm.logpdf(phi_t, mu_out, sd_out)  # (A, N)
    return score.mean(axis=0)


def lira_offline(inp: AttackInput, *, fixed_variance: bool, max_refs: int | None) -> np.ndarray:
    """Offline LiRA: one-sided log-odds of φ_t under the record's OUT Gaussian, mean over queries."""
    outs = select_refs(inp.refs_out, max_refs)
    _require_fit({"OUT": outs}, fixed_variance)
    phi_t, phi_r = inp.split_stat("phi")  # (A, N), (R, A, N)
    mu_out, sd_out = gaussian_fit(phi_r, outs, fixed_variance=fixed_variance)
    x = (phi_t - mu_out) / sd_out  # (A, N)
    # log-odds of Pr[Z ≤ φ_t]: the same order as log Pr[Z ≤ φ_t], but resolved where that
    # rounds to 0 (x beyond ~38, common with a per-record σ from 2 references), which tied
    # the most exposed records and hid an FPR range
    score = norm.logcdf(x) - norm.logsf(x)
    return score.mean(axis=0)


class LiraFixedParams(LiraParams):
    fixed_variance: bool = Field(True, description="one σ shared over records (better with few references)")


register_attack(
    "lira-online",
    description="LiRA online: IN and OUT Gaussians per record (Carlini et al. 2022)",
    params=LiraParams,
    knowledge="online",
)(lira_online)
register_attack(
    "lira-online-fixed",
    description="LiRA online with one σ shared over records",
    params=LiraFixedParams,
    knowledge="online",
)(lira_online)
register_attack(
    "lira-offline",
    description="LiRA offline: one-sided test against OUT Gaussians per record",
    params=LiraParams,
    knowledge="offline",
)(lira_offline)
register_attack(
    "lira-offline-fixed",
    description="LiRA offline with one σ shared over records",
    params=LiraFixedParams,
    knowledge="offline",
)(lira_offline)
