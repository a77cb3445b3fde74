"""Shokri's per-class shadow classifiers and the label-only attacks on fabricated signals."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.numerics import sorted_top_log_odds


def balanced_mask(rng, m, n):
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    return in_mask


def test_sorted_top_log_odds_are_the_sorted_probability_vector_as_log_odds():
    z = np.array([[0.0, 2.0, 1.0, -1.0]])
    p = np.exp(z) / np.exp(z).sum()
    top = np.sort(p[0])[::-1][:3]
    assert np.allclose(sorted_top_log_odds(z, 3)[0], np.log(top) - np.log1p(-top))
    assert np.isfinite(sorted_top_log_odds(np.array([[90.0, 0.0, 0.0]]), 2)).all()


def test_shokri_learns_a_separate_rule_per_class(rng):
    """Class 0 members are *more* confident, class 1 members *less*: one global rule cannot
    separate both, per-class classifiers can."""
    m, n, c = 8, 600, 2
    in_mask = balanced_mask(rng, m, n)
    y = np.repeat([0, 1], n // 2)
    margin = np.where(y == 0, np.where(in_mask, 3.0, 1.0), np.where(in_mask, 1.0, 3.0)) + rng.normal(0, 0.3, (m, n))
    z = np.zeros((m, 1, n, c))
    z[:, 0, np.arange(n), y] = margin
    inp = make_input(z, in_mask, y, 0, seed=0)
    s = ATTACKS.get("shokri")(inp)
    for cls in (0, 1):
        sel = y == cls
        assert roc_auc_score(in_mask[0][sel], s[sel]) > 0.95
    assert np.array_equal(s, ATTACKS.get("shokri")(inp))  # deterministic
    assert roc_auc_score(in_mask[0], ATTACKS.get("shokri")(inp, {"classifier": "boosting"})) > 0.9


def test_shokri_falls_back_to_one_classifier_for_tiny_classes(rng):
    m, n = 4, 40
    in_mask = balanced_mask(rng, m, n)
    y = np.zeros(n, int)
    y[:2] = 1  # class 1: 2 records × 3 shadows = 6 rows < min_rows
    z = rng.normal(size=(m, 1, n, 3))
    s = ATTACKS.get("shokri")(make_input(z, in_mask, y, 0))
    assert np.isfinite(s).all() and s.shape == (n,)


def test_label_only_gap_is_correctness():
    z = np.array([[[[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]], [[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]]])
    inp = make_input(z, np.array([[1, 0, 1], [0, 1, 0]], bool), np.array([0, 1, 1]), 0)
    assert ATTACKS.get("label-only-gap")(inp).tolist() == [1.0, 0.0, 1.0]


def test_label_only_augment_is_the_share_of_correct_queries():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 4, 5, 3))
    y = np.array([0, 1, 2, 0, 1])
    inp = make_input(z, np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]], bool), y, 0, is_image=True)
    expect = (z[0].argmax(-1) == y).mean(0)
    assert np.allclose(ATTACKS.get("label-only-augment")(inp), expect)
    assert ATTACKS.get("label-only-augment").images_only
    with pytest.raises(NotApplicable, match="augmented"):
        ATTACKS.get("label-only-augment")(make_input(z[:, :1], np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]], bool), y, 0))
