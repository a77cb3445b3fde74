"""Metrics on hand-built score sets with exact answers."""

import numpy as np
import pytest

from miaudit.metrics import attack_metrics, fpr_key, is_reliable, tpr_at_fpr


def pairwise_auc(s, m):
    pos, neg = s[m], s[~m]
    return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))


def test_toy_case_exact():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    m = np.array([1, 1, 0, 1, 0, 0, 1, 0], bool)
    r = attack_metrics(s, m, (0.0, 0.25, 0.5))
    assert r.auc == pytest.approx(pairwise_auc(s, m)) == pytest.approx(12 / 16)
    assert r.tpr_at_fpr["0.0"] == 0.5  # two members above every non-member
    assert r.tpr_at_fpr["0.25"] == 0.75  # FPR exactly 0.25 is allowed
    assert r.tpr_at_fpr["0.5"] == 0.75
    assert r.advantage == pytest.approx(0.5)


def test_ties_get_half_credit_and_no_upward_interpolation():
    s = np.array([1.0, 1.0, 0.0, 0.0])
    m = np.array([1, 0, 1, 0], bool)
    assert attack_metrics(s, m, (0.0,)).auc == pytest.approx(pairwise_auc(s, m)) == 0.5
    # the tied pair moves FPR from 0 to 0.5 at once: at alpha < 0.5 nothing is flagged
    assert tpr_at_fpr(s, m, 0.49) == 0.0
    assert tpr_at_fpr(s, m, 0.5) == 0.5


def test_random_scores_have_auc_near_half(rng):
    s = rng.random(20000)
    m = rng.random(20000) < 0.5
    r = attack_metrics(s, m, (0.01,))
    assert abs(r.auc - 0.5) < 0.02
    # chance control: TPR at 1% FPR within a binomial band around 1%
    assert abs(r.tpr_at_fpr["0.01"] - 0.01) < 4 * np.sqrt(0.01 * 0.99 / m.sum()) + 0.002


def test_reliability_rule():
    assert is_reliable(1000, 0.01) and not is_reliable(999, 0.01)
    assert not is_reliable(10**9, 0.0)
    assert fpr_key(0.001) == "0.001" and fpr_key(0) == "0.0" and fpr_key(1e-4) == "0.0001"
