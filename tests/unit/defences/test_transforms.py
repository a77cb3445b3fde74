"""Inference-time defences: the transforms on fabricated logits (the attackers on a pool: pipeline/, integration/)."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from miaudit.defences import LabelOnly, LogitReweighting, Temperature, TopK, reweight_logits
from miaudit.defences.transforms import LABEL_ONLY_GAP, class_centroids, swap_argmax


def fabricated_logits(rng, n=500, c=5, scale=3.0):
    labels = rng.integers(0, c, n)
    z = rng.normal(0, 1, (n, c)) * scale
    z[np.arange(n), labels] += 2 * scale  # mostly, the label is the argmax
    return z.astype(np.float32), labels


# --- logit reweighting -------------------------------------------------------------------------


def test_logit_reweighting_matches_the_formula_row_by_row(rng):
    z_train, y_train = fabricated_logits(rng)
    d = LogitReweighting(w=0.1, preserve_argmax=False).fit(z_train, y_train)
    for k in range(5):
        np.testing.assert_allclose(d.centroids_[k], z_train[y_train == k].astype(np.float64).mean(axis=0))
    queries, _ = fabricated_logits(rng, n=200)
    out = d(queries)
    for z, o in zip(queries.astype(np.float64), out):
        k = int(np.argmax(z))
        c = d.centroids_[k]
        s = 0.1 * float(z @ c) / (np.linalg.norm(z) * np.linalg.norm(c))
        np.testing.assert_allclose(o, s * z + (1 - s) * c, rtol=1e-5, atol=1e-5)  # float32 out


def test_logit_reweighting_is_vectorised_over_leading_axes(rng):
    z_train, y_train = fabricated_logits(rng)
    d = LogitReweighting().fit(z_train, y_train)
    q = rng.normal(0, 3, (2, 3, 40, 5)).astype(np.float32)
    out = d(q)
    assert out.shape == q.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 2], d(q[1, 2]))


def test_logit_reweighting_never_changes_the_argmax(rng):
    """Random logits include negative cosines (s < 0) and a class whose centroid favours another
    class; the bare formula then changes some predictions, the defence never does."""
    z_train, y_train = fabricated_logits(rng)
    # class 4's training logits favour class 0: its centroid's argmax is 0
    z_train[y_train == 4] = z_train[y_train == 4][:, [4, 1, 2, 3, 0]]
    d = LogitReweighting(w=0.5).fit(z_train, y_train)
    assert np.argmax(d.centroids_[4]) != 4
    q = rng.normal(0, 5, (5000, 5)).astype(np.float32)
    bare = reweight_logits(q, d.centroids_, 0.5)
    assert (bare.argmax(-1) != q.argmax(-1)).sum() > 10  # the guard has work to do
    np.testing.assert_array_equal(d(q).argmax(-1), q.argmax(-1))
    # with the study's w = 0.1 too
    np.testing.assert_array_equal(LogitReweighting(w=0.1).fit(z_train, y_train)(q).argmax(-1), q.argmax(-1))


def test_swap_argmax_keeps_values_and_breaks_ties_towards_k():
    a = np.array([[1.0, 3.0, 2.0], [2.0, 2.0, 0.0]])
    assert swap_argmax(a, np.array([0, 1])) == 2
    assert a[0].tolist() == [3.0, 1.0, 2.0] and a.argmax(-1).tolist() == [0, 1]


def test_classes_without_training_records_are_left_unchanged():
    z = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    d = LogitReweighting(w=0.1).fit(z, np.array([0, 1]))
    assert np.isnan(class_centroids(z, np.array([0, 1]), 3)[2]).all()
    q = np.array([[0.0, 1.0, 4.0]])
    np.testing.assert_array_equal(d(q), q)


# --- the other transforms ------------------------------------------------------------------------------


def test_label_only_releases_the_label_and_nothing_else(rng):
    q = rng.normal(0, 2, (100, 6))
    out = LabelOnly()(q)
    assert (out.argmax(-1) == q.argmax(-1)).all()
    assert set(np.unique(out).tolist()) == {-LABEL_ONLY_GAP, 0.0}
    assert ((out == 0).sum(-1) == 1).all()


def test_top_k_releases_the_k_largest_probabilities_exactly(rng):
    q = rng.normal(0, 2, (50, 6))
    out = TopK(k=2)(q)
    logp = log_softmax(q, axis=-1)
    top = np.argsort(-q, axis=-1)[:, :2]
    np.testing.assert_allclose(np.take_along_axis(out, top, -1), np.take_along_axis(logp, top, -1), rtol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0)  # the rest mass is spread, not lost
    rest = np.sort(out, axis=-1)[:, :4]
    np.testing.assert_allclose(rest, rest[:, :1].repeat(4, axis=1))
    assert (out.argmax(-1) == q.argmax(-1)).all()


def test_temperature_divides_the_logits(rng):
    q = rng.normal(0, 2, (10, 3)).astype(np.float32)
    np.testing.assert_allclose(Temperature(temperature=4.0)(q), q / 4)


# --- the three attackers --------------------------------------------------------------------------------
