"""miaudit.numerics: known answers on tiny logits, stability at large margins, and blocks that change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit import numerics
from miaudit.numerics import by_records, log_softmax, logp_y_from, logsumexp, scaled_logit, true_logit_and_rest


def test_logsumexp_known_answers_and_all_minus_inf():
    assert logsumexp(np.array([0.0, 0.0])) == pytest.approx(np.log(2.0))
    assert logsumexp(np.array([1000.0, 1000.0])) == pytest.approx(1000.0 + np.log(2.0))  # no overflow
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf  # not NaN
    np.testing.assert_allclose(logsumexp(np.zeros((2, 3)), axis=0, keepdims=True), np.full((1, 3), np.log(2.0)))


def test_true_logit_rest_phi_and_logp_y_by_hand():
    z = np.array([[3.0, 1.0, 1.0], [0.0, 0.0, 700.0]])
    y = np.array([0, 0])
    z_y, rest = true_logit_and_rest(z, y)
    assert z_y.tolist() == [3.0, 0.0]
    np.testing.assert_allclose(rest, [1.0 + np.log(2.0), 700.0])
    phi = scaled_logit(z, y)
    np.testing.assert_allclose(phi, [2.0 - np.log(2.0), -700.0])  # finite where p_y underflows
    p = np.exp(3.0) / (np.exp(3.0) + 2 * np.e)
    assert logp_y_from(z_y, rest)[0] == pytest.approx(np.log(p))
    assert np.log(p) - np.log1p(-p) == pytest.approx(phi[0])  # φ is the log-odds of p_y
    assert z.tolist() == [[3.0, 1.0, 1.0], [0.0, 0.0, 700.0]]  # the caller's logits are not written


def test_log_softmax_normalises_and_matches_scipy():
    from scipy.special import log_softmax as ref

    z = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    out = log_softmax(z)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref(z.astype(np.float64), axis=-1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0)


def test_blocks_change_no_bit(monkeypatch):
    """by_records works on blocks of records; the block size must not change any result."""
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(3, 50, 7)).astype(np.float32), rng.integers(0, 7, 50)
    whole = scaled_logit(z, y), log_softmax(z), numerics.sorted_top_log_odds(z, 3), numerics.log_one_minus_softmax(z)
    monkeypatch.setattr(numerics, "BLOCK_ELEMENTS", 1)  # one record per block
    blocked = scaled_logit(z, y), log_softmax(z), numerics.sorted_top_log_odds(z, 3), numerics.log_one_minus_softmax(z)
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_by_records_joins_tuples_and_handles_no_records():
    z = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    a, b = by_records(lambda blk, _: (blk.sum(-1), blk.max(-1)), z)
    np.testing.assert_array_equal(a, z.sum(-1))
    np.testing.assert_array_equal(b, z.max(-1))
    assert by_records(lambda blk, _: blk.sum(-1), np.zeros((2, 0, 3))).shape == (2, 0)
