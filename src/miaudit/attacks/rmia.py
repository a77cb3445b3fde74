"""RMIA, the relative membership-inference attack (Zarifzadeh, Liu, Ko & Shokri, "Low-Cost
High-Power Membership Inference Attacks", ICML 2024, §3).

For the target θ and a record x, Pr(x|θ) = p_y(x) under θ, and Pr(x) is its average over
reference models:

- online (IN and OUT references): Pr(x) = ½ (mean over IN refs + mean over OUT refs). The two
  means get equal weight, so Pr(x) does not depend on how many references hold x: with the
  balanced design those counts differ by one with the target's membership, and a plain mean
  over all references would leak it.
- offline (OUT references only): Pr(x) = ((1+a)·mean_OUT + (1−a)) / 2, the paper's linear
  approximation p_IN ≈ a·p_OUT + (1−a) (§3, "offline"). ``a`` is tuned on the references
  (``tune_offline_a``) unless set.

The ratio r(x) = Pr(x|θ) / Pr(x) is compared with the same ratio for population records z
(never trained on; all references are OUT for them, so Pr(z) is their mean over the references,
with the same ``a`` offline):

    Score(x) = fraction of z with r(x) / r(z) > γ.

It is counted with one sort of log r(z) and a ``searchsorted`` per record, O((N + Z) log Z),
never an N×Z matrix. Everything is in float64 log space, so ratios stay finite.

Choices made here (and pinned by tests):

- γ = 2 by default, the value in the authors' experiment configs (ml_privacy_meter
  ``research/2023_rmia/attack_configs``, online and offline alike). For a fixed population the
  score is a monotone step function of r(x), so γ only moves where it saturates at 0 and 1: a
  larger γ resolves the top (the low-FPR end) better and the bottom worse.
- Augmented queries: the score is computed per query and averaged over queries, as LiRA does.
  The authors' code takes a majority vote over queries for every (x, z) pair, which needs the
  N×Z matrix; the per-query average is the soft, sortable version of that vote.
- Means are arithmetic (the authors' code also offers a trimmed mean).
- Ties: the score is a step function with steps 1/(Z·A); records inside one step are ordered
  by their mean log r(x) (``break_ties``), so a saturated block cannot hide an FPR range.
- Tuning ``a`` (offline): the first reference plays the target against the remaining
  references (chosen by the same ``reference_sets`` rule as the target's); the chosen ``a``
  is reported per target in results.json (``attacks.rmia-offline.chosen``); every a on the grid 0, 0.1, …, 1 is tried and the one with the highest AUC wins
  (ties: the smaller a). AUC rather than TPR at low FPR because one pseudo-target gives a
  stable AUC but a noisy low-FPR figure; ML Privacy Meter tunes on AUC as well.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from miaudit.attacks.base import AttackInput, NotApplicable, reference_sets, register_attack, require_references, select_refs
from miaudit.metrics import auc
from miaudit.numerics import logsumexp

log = logging.getLogger(__name__)

#: ``a`` when it cannot be tuned (fewer than 6 models): Pr(x) = mean_OUT, no linear correction
UNTUNED_A = 1.0

#: values of ``a`` tried when tuning offline RMIA
A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


class RmiaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: float = Field(2.0, gt=0, description="count z with r(x)/r(z) > gamma; 2 as in the authors' configs")
    max_refs: int | None = Field(
        None, ge=1, description="use at most this many references per record on each side, first in order (None = all)"
    )


class RmiaOfflineParams(RmiaParams):
    a: float | None = Field(
        None, ge=0, le=1, description="p_IN ≈ a·p_OUT + (1−a); None = tuned on the reference models (needs 2 of them)"
    )


def relative_score(log_rx: np.ndarray, log_rz: np.ndarray, gamma: float) -> np.ndarray:
    """Fraction of population records z with r(x)/r(z) > γ, for every x; (..., N) float64.

    Parameters
    ----------
    log_rx : (..., N) float64, log r(x) per query (leading axes) and record
    log_rz : (..., Z) float64, log r(z), same leading axes

    Examples
    --------
    >>> relative_score(np.log([[1.0, 4.0, 9.0]]), np.log([[1.0, 2.0, 3.0]]), 2.0).tolist()
    [[0.0, 0.3333333333333333, 1.0]]
    """
    log_rx = np.asarray(log_rx, dtype=np.float64)
    log_rz = np.sort(np.asarray(log_rz, dtype=np.float64), axis=-1)
    bound = log_rx - np.log(gamma)  # r(x)/r(z) > γ  ⇔  log r(z) < log r(x) − log γ
    lead = np.broadcast_shapes(log_rx.shape[:-1], log_rz.shape[:-1])
    log_rx_b = np.broadcast_to(bound, lead + bound.shape[-1:]).reshape(-1, bound.shape[-1])
    log_rz_b = np.broadcast_to(log_rz, lead + log_rz.shape[-1:]).reshape(-1, log_rz.shape[-1])
    counts = np.stack([np.searchsorted(z, x, side="left") for z, x in zip(log_rz_b, log_rx_b, strict=True)])
    return (counts / log_rz.shape[-1]).reshape(lead + bound.shape[-1:])


def _log_masked_mean(logp: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of the mean of exp(logp) over references where ``mask``; logp (R, A, N), mask (R, N)."""
    m = np.broadcast_to(mask[:, None, :], logp.shape)
    count = mask.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = logsumexp(np.where(m, logp, -np.inf), axis=0)  # (A, N); -inf where count = 0
        return lse - np.log(count), count


def _offline_log_pr(log_mean_out: np.ndarray, a: float) -> np.ndarray:
    """log Pr(x) = log(((1+a)·mean_OUT + (1−a)) / 2), in log space."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log((1 + a) / 2) + log_mean_out, np.log((1 - a) / 2))


def _need_population(inp: AttackInput) -> None:
    if inp.population is None or inp.population.labels.shape[0] == 0:
        raise NotApplicable("needs population records (a population split, or population_logits in a signals file)")


def _log_probs(inp: AttackInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """log p_y of the target and references on x (A, N), (R, A, N) and on z (A, Z), (R, A, Z)."""
    lp_t, lp_r = inp.split_stat("logp_y")
    lpz_t, lpz_r = inp.population.split_stat("logp_y")
    return lp_t, lp_r, lpz_t, lpz_r


def _offline_parts(lp_t, lp_r, refs_out, lpz_t, lpz_r, max_refs):  # noqa: ANN001, ANN202
    """log p_y of the target on x and z, and log mean_OUT on x and z (first ``max_refs`` OUT references)."""
    outs = select_refs(refs_out, max_refs)
    require_references({"OUT": outs})
    lmo_x, _ = _log_masked_mean(lp_r, outs)
    all_z = select_refs(np.ones((lpz_r.shape[0], lpz_r.shape[-1]), dtype=bool), max_refs)
    lmo_z, _ = _log_masked_mean(lpz_r, all_z)
    return lp_t, lmo_x, lpz_t, lmo_z


def break_ties(score: np.ndarray, log_rx: np.ndarray, n_levels: int) -> np.ndarray:
    """RMIA's score with ties inside each of its steps broken by the mean log r(x) over queries.

    The score is a mean of counts over Z population records: a step function of r(x) with
    steps 1/(Z·A) apart. On confident models whole blocks of records saturate at one step (all
    z below them), and a tie block can hide an entire FPR range (TPR@10% = TPR@1%). Inside a
    step the paper's statistic cannot order records; r(x), the finer statistic it quantises,
    can. So each record gets ``score + ρ/(2·n_levels)``, ρ in (0, 1) the rank of its mean log
    r(x): the order between steps is unchanged, the order within a step follows r(x), and
    records with equal r(x) stay tied.

    Parameters
    ----------
    score : (N,) float64 in steps of 1/n_levels
    log_rx : (A, N) float64
    """
    rho = rankdata(log_rx.mean(axis=0)) / (score.shape[0] + 1)
    return score + rho / (2.0 * n_levels)


def _offline_score(parts, a: float, gamma: float, *, ties: bool = True) -> np.ndarray:  # noqa: ANN001
    lp_t, lmo_x, lpz_t, lmo_z = parts
    log_rx = lp_t - _offline_log_pr(lmo_x, a)
    log_rz = lpz_t - _offline_log_pr(lmo_z, a)
    score = relative_score(log_rx, log_rz, gamma).mean(axis=0)
    return break_ties(score, log_rx, log_rz.size) if ties else score


def tune_offline_a(inp: AttackInput, *, gamma: float, max_refs: int | None) -> float:
    """The ``a`` on ``A_GRID`` that maximises the AUC of offline RMIA against the first reference.

    The first reference plays the target, the remaining references are its references; records
    without an OUT reference among them are left out of the AUC. Deterministic: no randomness,
    ties go to the smaller ``a``.

    Raises
    ------
    NotApplicable
        with fewer than 2 reference models (set ``a`` explicitly then).
    """
    _need_population(inp)
    if inp.n_refs < 2:
        raise NotApplicable("tuning a needs at least 2 reference models; set attack_params.rmia-offline.a")
    _, lp_r, _, lpz_r = _log_probs(inp)
    # the pseudo-target's references: the same membership-blind rule as the real target's
    rng = np.random.default_rng(np.random.SeedSequence([inp.seed, 0xA_7E, inp.target_index]))
    _, rest_out = reference_sets(inp.refs_in[1:], inp.refs_out[1:], rng)
    labelled = inp.refs_in[0] | inp.refs_out[0]
    usable = labelled & (select_refs(rest_out, max_refs).sum(axis=0) >= 1)
    member = inp.refs_in[0][usable]
    if member.all() or not member.any():
        raise NotApplicable(
            "tuning a: too few references for a pseudo-target with members and non-members "
            "(a pool of 6 or more, or set attack_params.rmia-offline.a)"
        )
    parts = _offline_parts(lp_r[0][:, usable], lp_r[1:][:, :, usable], rest_out[:, usable], lpz_r[0], lpz_r[1:], max_refs)
    aucs = [auc(_offline_score(parts, a, gamma, ties=False), member) for a in A_GRID]
    best = A_GRID[int(np.argmax(aucs))]
    log.debug("rmia-offline: a=%s (AUC by a: %s)", best, dict(zip(A_GRID, np.round(aucs, 4), strict=True)))
    return best


def rmia_offline(inp: AttackInput, *, gamma: float, max_refs: int | None, a: float | None) -> tuple[np.ndarray, dict[str, float]]:
    """Offline RMIA scores (OUT references only; ``a`` tuned on the references when None) and the
    values it used: ``{"a": ..., "a_tuned": 0/1}`` (reported in results.json)."""
    _need_population(inp)
    lp_t, lp_r, lpz_t, lpz_r = _log_probs(inp)
    parts = _offline_parts(lp_t, lp_r, inp.refs_out, lpz_t, lpz_r, max_refs)
    tuned = a is None
    if a is None:
        try:
            a = tune_offline_a(inp, gamma=gamma, max_refs=max_refs)
        except NotApplicable:
            # too few references for a pseudo-target (a pool of 4 leaves one per side): no
            # correction, Pr(x) = mean over OUT references; reported as a_tuned = 0
            a, tuned = UNTUNED_A, False
    return _offline_score(parts, a, gamma), {"a": float(a), "a_tuned": float(tuned)}


def rmia_online(inp: AttackInput, *, gamma: float, max_refs: int | None) -> np.ndarray:
    """Online RMIA score: Pr(x) = ½ (mean over IN refs + mean over OUT refs)."""
    _need_population(inp)
    lp_t, lp_r, lpz_t, lpz_r = _log_probs(inp)
    ins, outs = select_refs(inp.refs_in, max_refs), select_refs(inp.refs_out, max_refs)
    require_references({"IN": ins, "OUT": outs})
    lmi, _ = _log_masked_mean(lp_r, ins)
    lmo, _ = _log_masked_mean(lp_r, outs)
    log_pr_x = np.logaddexp(lmi, lmo) - np.log(2.0)
    all_z = select_refs(np.ones((lpz_r.shape[0], lpz_r.shape[-1]), dtype=bool), max_refs)
    log_pr_z, _ = _log_masked_mean(lpz_r, all_z)
    log_rx, log_rz = lp_t - log_pr_x, lpz_t - log_pr_z
    return break_ties(relative_score(log_rx, log_rz, gamma).mean(axis=0), log_rx, log_rz.size)


register_attack(
    "rmia-online",
    description="RMIA online: ratio to IN+OUT references, compared with population records (Zarifzadeh et al. 2024)",
    params=RmiaParams,
    knowledge="online",
)(rmia_online)
register_attack(
    "rmia-offline",
    description="RMIA offline: OUT references with the tuned linear correction a (Zarifzadeh et al. 2024)",
    params=RmiaOfflineParams,
    knowledge="offline",
)(rmia_offline)
