"""Bootstrap CIs against explicitly resampled arrays (the slow oracle), and PPV at priors."""

import hashlib

import numpy as np
import pytest

from miaudit.metrics import (
    SortedScores,
    attack_metrics,
    average_metrics,
    bootstrap_ci,
    bootstrap_seed,
    fpr_key,
    ppv,
    resample_indices,
    weighted_roc_stats,
)

FPRS = (0.0, 0.01, 0.05, 0.1, 0.3)


@pytest.mark.parametrize("rounding", [None, 1])
def test_fast_resample_stats_equal_attack_metrics_on_resampled_arrays(rng, rounding):
    n = 400
    member = rng.random(n) < 0.45
    scores = rng.normal(size=n) + 0.8 * member
    if rounding is not None:
        scores = np.round(scores, rounding)  # many ties, within and across classes
    pos, neg = np.flatnonzero(member), np.flatnonzero(~member)
    r = np.random.default_rng(5)
    idx_m, idx_n = resample_indices(r, len(pos), 30), resample_indices(r, len(neg), 30)
    auc, adv, tpr = weighted_roc_stats(SortedScores.build(scores, member), idx_m, idx_n, FPRS)
    for b in range(30):
        s = np.concatenate([scores[pos[idx_m[b]]], scores[neg[idx_n[b]]]])
        m = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        ref = attack_metrics(s, m, FPRS)
        assert auc[b] == pytest.approx(ref.auc, abs=1e-12)
        assert adv[b] == pytest.approx(ref.advantage, abs=1e-12)
        assert tpr[b] == pytest.approx([ref.tpr_at_fpr[fpr_key(a)] for a in FPRS], abs=1e-12)


def test_ci_brackets_the_estimate_and_is_seeded(rng):
    scores, members = [], []
    for _ in range(3):  # three targets
        m = rng.random(2000) < 0.5
        members.append(m)
        scores.append(rng.normal(size=2000) + 0.5 * m)
    point = average_metrics([attack_metrics(s, m, FPRS) for s, m in zip(scores, members)])
    ci = bootstrap_ci(scores, members, FPRS, n_boot=200, seed=bootstrap_seed(0, "loss"))
    assert ci["auc"][0] < point["auc"] < ci["auc"][1]
    assert ci["auc"][1] - ci["auc"][0] < 0.04
    lo, hi = ci["tpr_at_fpr"]["0.1"]
    assert lo <= point["tpr_at_fpr"]["0.1"] <= hi
    assert ci == bootstrap_ci(scores, members, FPRS, n_boot=200, seed=bootstrap_seed(0, "loss"))
    assert ci != bootstrap_ci(scores, members, FPRS, n_boot=200, seed=bootstrap_seed(0, "entropy"))


def test_bootstrap_seed_is_the_run_seed_and_a_stable_hash_of_the_name():
    # not Python's hash(), which is salted per process: the same run gives the same CIs tomorrow
    digest = int.from_bytes(hashlib.sha256(b"lira-online").digest()[:8], "little")
    assert bootstrap_seed(3, "lira-online").entropy == np.random.SeedSequence([3, digest]).entropy


def test_perfect_separation_has_a_degenerate_interval():
    s = np.arange(100.0)
    m = s >= 50
    ci = bootstrap_ci([s], [m], (0.0, 0.01), n_boot=50, seed=1)
    assert ci["auc"] == [1.0, 1.0] and ci["tpr_at_fpr"]["0.0"] == [1.0, 1.0]


def test_ppv_closed_form_and_layout():
    assert ppv(0.2, 0.01, 0.5) == pytest.approx(0.2 / 0.21)
    assert ppv(0.2, 0.01, 0.01) == pytest.approx(0.01 * 0.2 / (0.01 * 0.2 + 0.99 * 0.01))
    assert np.isnan(ppv(0.0, 0.0, 0.1))
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    m = np.array([1, 1, 0, 1, 0, 0, 1, 0], bool)
    res = average_metrics([attack_metrics(s, m, (0.0, 0.25))], priors=(0.01, 0.5))
    assert res["fpr_achieved"] == {"0.0": 0.0, "0.25": 0.25}
    assert res["ppv"]["0.5"]["0.0"] == 1.0  # two members flagged, no non-member
    assert res["ppv"]["0.5"]["0.25"] == pytest.approx(0.75 / (0.75 + 0.25))
    assert res["ppv"]["0.01"]["0.25"] == pytest.approx(0.01 * 0.75 / (0.01 * 0.75 + 0.99 * 0.25))
