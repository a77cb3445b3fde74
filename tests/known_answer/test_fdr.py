"""The chance control of the vulnerable set on fabricated scores with a known set of true positives."""

import itertools

import numpy as np
import pytest
from scipy.stats import binom

from miaudit.metrics import tpr_at_fpr
from miaudit.pipeline.pool import membership_design
from miaudit.vulnerability.scores import (
    chance_control,
    chance_count_pmf,
    chance_pass_probability,
    flag_at_fpr,
    record_vulnerability,
)


def brute_force_pass_probability(k: int, alpha: float, cut: float) -> float:
    """Enumerate every flag pattern over k IN targets (the oracle)."""
    need = max(1, int(np.ceil(cut * k - 1e-9)))
    total = 0.0
    for pattern in itertools.product([0, 1], repeat=k):
        s = sum(pattern)
        if s >= need:
            total += alpha**s * (1 - alpha) ** (k - s)
    return total


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("cut", [0.25, 0.5, 1.0])
def test_pass_probability_matches_enumeration(k, cut):
    got = float(chance_pass_probability(np.array([k]), 0.01, cut)[0])
    assert got == pytest.approx(brute_force_pass_probability(k, 0.01, cut), rel=1e-12)


def test_count_pmf_is_the_convolution_of_binomials():
    k = np.array([2] * 30 + [3] * 20 + [0] * 5)
    pmf = chance_count_pmf(k, 0.1, 0.5)
    assert len(pmf) == 51 and pmf.sum() == pytest.approx(1.0)
    p2, p3 = chance_pass_probability(np.array([2, 3]), 0.1, 0.5)
    ref = np.convolve(binom.pmf(np.arange(31), 30, p2), binom.pmf(np.arange(21), 20, p3))
    np.testing.assert_allclose(pmf, ref, atol=1e-15)
    assert (pmf * np.arange(51)).sum() == pytest.approx(30 * p2 + 20 * p3)


@pytest.mark.parametrize("seed", range(5))
def test_flags_reproduce_tpr_at_fpr_with_ties(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 40, 3000).astype(float)  # many ties
    m = rng.random(3000) < 0.5
    for alpha in (0.0, 0.001, 0.01, 0.1, 0.5):
        flags = flag_at_fpr(s, m, alpha)
        assert flags[m].mean() == pytest.approx(tpr_at_fpr(s, m, alpha))
        assert flags[~m].mean() <= alpha + 1e-12


def test_known_true_positives_and_chance_count():
    """200 records always leak when IN; everything else is noise. The set = 200 + chance."""
    rng = np.random.default_rng(0)
    n, m_models, alpha, n_true = 20_000, 8, 0.01, 200
    in_mask = membership_design(m_models, n, seed=1)  # every record IN for 4 of 8 targets
    scores = rng.normal(size=(m_models, n))
    leaky = rng.choice(n, n_true, replace=False)
    scores[:, leaky] += np.where(in_mask[:, leaky], 50.0, 0.0)
    rv = record_vulnerability(scores, in_mask, alpha, cut=0.5)
    assert rv.vulnerable[leaky].all()
    c = chance_control(rv)
    # exact: 20,000 x P(Binomial(4, 0.01) >= 2)
    assert c["chance_expected"] == pytest.approx(n * binom.sf(1, 4, alpha), rel=1e-12)
    assert c["chance_expected"] == pytest.approx(11.8406, abs=1e-3)
    false = c["set_size"] - n_true
    assert abs(false - (n - n_true) * binom.sf(1, 4, alpha)) < 4 * np.sqrt(c["chance_expected"]) + 1
    # the FDR estimate tracks the realised false share
    assert c["fdr_estimate"] == pytest.approx(c["chance_expected"] / c["set_size"])
    assert abs(c["fdr_estimate"] - false / c["set_size"]) < 0.04
    assert c["distinguishable_from_chance"] and c["p_value"] < 1e-100
    assert "distinguishable from chance" in c["statement"] and "NOT" not in c["statement"]
    # the OUT control (same rule on OUT targets) sees only noise: about the chance count
    assert c["out_control_count"] < 4 * c["chance_expected"]
    # TP frequency of the leaky records is 1; vulnerability ranks them first
    assert np.all(rv.tp_frequency[leaky] == 1.0)
    assert set(np.argsort(-rv.vulnerability)[:n_true]) == set(leaky)


def test_pure_noise_is_not_distinguishable_from_chance():
    rng = np.random.default_rng(3)
    in_mask = membership_design(8, 20_000, seed=2)
    rv = record_vulnerability(rng.normal(size=(8, 20_000)), in_mask, 0.01, cut=0.5)
    c = chance_control(rv)
    assert abs(c["set_size"] - c["chance_expected"]) < 4 * c["chance_sd"] + 1
    assert not c["distinguishable_from_chance"]
    assert "NOT distinguishable from chance" in c["statement"]
    assert c["fdr_estimate"] is None or c["fdr_estimate"] > 0.4


def test_chance_count_matches_simulation():
    """Monte Carlo of random thresholds on pure noise: mean set size = the exact expectation."""
    rng = np.random.default_rng(7)
    n, alpha = 2000, 0.05
    in_mask = membership_design(4, n, seed=3)  # k = 2 IN targets per record
    sizes = [record_vulnerability(rng.normal(size=(4, n)), in_mask, alpha, cut=0.5).vulnerable.sum() for _ in range(200)]
    expected = n * binom.sf(0, 2, alpha)
    assert abs(np.mean(sizes) - expected) < 4 * np.sqrt(expected / 200) + 1


def test_empty_set_has_no_fdr():
    in_mask = membership_design(4, 100, seed=0)
    scores = np.where(in_mask, 0.0, 1.0)  # members always below every non-member
    c = chance_control(record_vulnerability(scores, in_mask, 0.01))
    assert c["set_size"] == 0 and c["fdr_estimate"] is None and not c["distinguishable_from_chance"]
