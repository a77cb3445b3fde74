"""Population-threshold attacks and calibrated loss against their formulas (DESIGN.md, Song & Mittal)."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.numerics import log_one_minus_softmax
from miaudit.attacks.threshold import modified_entropy


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def single(logits, labels):
    """A 2-model pool whose target 0 has ``logits``; the reference is a copy (unused by these attacks)."""
    z = np.stack([logits, logits])[:, None]  # (2, 1, N, C)
    in_mask = np.array([[True] * len(labels), [False] * len(labels)])
    return make_input(z, in_mask, labels, target=0)


Z = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [-2.0, 0.0, 4.0], [1.0, 1.0, 1.0]])
Y = np.array([0, 1, 0, 2])


def test_confidence_entropy_and_modified_entropy_match_their_formulas():
    p = softmax(Z)
    inp = single(Z, Y)
    py = p[np.arange(4), Y]
    assert np.allclose(ATTACKS.get("confidence")(inp), py, rtol=1e-12)
    assert np.allclose(ATTACKS.get("entropy")(inp), (p * np.log(p)).sum(-1), rtol=1e-12)
    mentr = np.array([
        -(1 - p[i, Y[i]]) * np.log(p[i, Y[i]]) - sum(p[i, j] * np.log(1 - p[i, j]) for j in range(3) if j != Y[i])
        for i in range(4)
    ])
    assert np.allclose(ATTACKS.get("modified-entropy")(inp), -mentr, rtol=1e-12)
    assert np.allclose(ATTACKS.get("loss")(inp), np.log(py), rtol=1e-12)


def test_confidence_ranks_like_loss():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 5)) * 3
    y = rng.integers(0, 5, 50)
    inp = single(z, y)
    assert np.array_equal(np.argsort(ATTACKS.get("confidence")(inp)), np.argsort(ATTACKS.get("loss")(inp)))


def test_modified_entropy_stays_finite_and_resolved_at_large_margins():
    z = np.array([[80.0, 0.0, 0.0], [0.0, 80.0, 0.0], [60.0, 0.0, 0.0]])
    y = np.array([0, 0, 0])
    m = modified_entropy(z, y)
    assert np.isfinite(m).all()
    # wrong and confident: −(1−p_y) log p_y ≈ 80, and −p_1 log(1 − p_1) = 80 − log 2
    assert m[1] == pytest.approx(160 - np.log(2), abs=1e-9)
    assert 0 < m[0] < m[2]  # resolved at margins 60 and 80: more confident and correct ⇒ lower Mentr
    # log(1 − p) of the top class comes from the other classes' mass, not from 1 − rounded p
    assert log_one_minus_softmax(z)[0, 0] == pytest.approx(np.log(2) - 80, abs=1e-9)


def test_calibrated_loss_subtracts_mean_out_reference_loss():
    rng = np.random.default_rng(2)
    m, n, c = 6, 30, 4
    z = rng.normal(size=(m, 1, n, c))
    y = rng.integers(0, c, n)
    in_mask = rng.random((m, n)).argsort(0) < 3  # every record IN for 3 of 6 models
    inp = make_input(z, in_mask, y, target=0)
    p = softmax(z[:, 0])
    loss = -np.log(p[:, np.arange(n), y])  # (M, N)
    refs, refs_out = loss[1:], inp.refs_out
    assert (refs_out.sum(0) == 2).all()  # M − 1 − 3 OUT references, whatever the target's membership
    assert not (refs_out & in_mask[1:]).any()
    expect = -(loss[0] - np.array([refs[refs_out[:, j], j].mean() for j in range(n)]))
    assert np.allclose(ATTACKS.get("calibrated-loss")(inp), expect, rtol=1e-10)
    # max_refs keeps the first OUT reference only
    first = -(loss[0, 0] - refs[refs_out[:, 0], 0][0])
    assert ATTACKS.get("calibrated-loss")(inp, {"max_refs": 1})[0] == pytest.approx(first)


def test_calibrated_loss_needs_an_out_reference():
    z = np.zeros((2, 1, 3, 2))
    with pytest.raises(NotApplicable, match="OUT reference"):
        ATTACKS.get("calibrated-loss")(make_input(z, np.array([[1, 0, 1], [1, 1, 0]], bool), np.zeros(3, int), 0))
