"""Null pools: logits drawn independently of membership, so every attack must score chance.

The balanced design puts every record IN for exactly M/2 models; without
``attacks.base.reference_sets`` the references' counts per side told the target's membership
(per-record LiRA scored AUC 0.374 on such a pool). Every registered attack is run against
every target of pools of 4, 6 and 8 models: each target's AUC must be 0.5 within a wide
interval (z = 4 on the Hanley–McNeil standard error: ~300 intervals per run, none should
fail by chance) and TPR at 1% FPR must stay near 1%. The second pool makes the null hard:
records differ in difficulty (shared by all models) and models differ in calibration (scale
and offset), which is what a membership-dependent choice of references would pick up.
"""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.metrics import attack_metrics
from miaudit.pipeline.pool import membership_design

N, P, C, A = 6000, 1500, 4, 2  # audit records, population records, classes, queries


def _hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return float(np.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)))


def _null_logits(rng, m, n, labels, difficulty, scale, offset):
    """(M, A, n, C) logits: the true class's margin = scale_m · difficulty_n + offset_m + noise, no membership."""
    z = rng.normal(size=(m, A, n, C))
    margin = scale[:, None, None] * difficulty[None, None, :] + offset[:, None, None] + rng.normal(size=(m, A, n))
    z[..., np.arange(n), labels] += margin
    return z


def _pool(m: int, seed: int, heterogeneous: bool):
    rng = np.random.default_rng(seed)
    labels, pop_labels = rng.integers(0, C, N), rng.integers(0, C, P)
    if heterogeneous:
        difficulty, pop_difficulty = rng.normal(2.0, 2.5, N), rng.normal(2.0, 2.5, P)
        scale, offset = rng.uniform(0.5, 2.0, m), rng.normal(0, 1.5, m)
    else:
        difficulty, pop_difficulty = np.full(N, 2.0), np.full(P, 2.0)
        scale, offset = np.ones(m), np.zeros(m)
    logits = _null_logits(rng, m, N, labels, difficulty, scale, offset)
    pop = _null_logits(rng, m, P, pop_labels, pop_difficulty, scale, offset)
    return logits, membership_design(m, N, seed), labels, pop, pop_labels


@pytest.mark.parametrize("heterogeneous", [False, True], ids=["plain", "difficulty+calibration"])
@pytest.mark.parametrize("m", [4, 6, 8])
def test_every_attack_scores_chance_on_a_null_pool(m, heterogeneous):
    logits, in_mask, labels, pop, pop_labels = _pool(m, 100 + m, heterogeneous)
    ran, failures = set(), []
    frng = np.random.default_rng(m)  # records' features, independent of membership like everything else
    feats, pop_feats = frng.normal(size=(N, 4)), frng.normal(size=(P, 4))
    for t in range(m):
        inp = make_input(logits, in_mask, labels, t, population_logits=pop, population_labels=pop_labels,
                         is_image=True, seed=7, features=feats, population_features=pop_feats)  # feats: qmia's inputs
        member = in_mask[t]
        for name, spec in ATTACKS.items():
            try:
                scores = spec(inp)
            except NotApplicable:
                continue  # e.g. per-record σ needs 2 references per side: M = 4 leaves 1
            ran.add(name)
            res = attack_metrics(scores, member, (0.01,))
            se = _hanley_mcneil_se(0.5, int(member.sum()), int((~member).sum()))
            if abs(res.auc - 0.5) > 4 * se:
                failures.append(f"{name} target {t}: AUC {res.auc:.4f} (±{4 * se:.4f})")
            if res.tpr_at_fpr["0.01"] > 0.025:
                failures.append(f"{name} target {t}: TPR@1% {res.tpr_at_fpr['0.01']:.4f}")
    assert not failures, failures
    # every attack runs on a pool of 6 or more; at 4 (one reference per side) per-record σ cannot
    expected = set(ATTACKS.names()) if m >= 6 else set(ATTACKS.names()) - {"lira-online", "lira-offline"}
    assert ran == expected
