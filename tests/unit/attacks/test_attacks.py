"""score_attack: any registered attack by name on plain arrays, the target's membership withheld."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from miaudit.attacks import score_attack
from miaudit.errors import ConfigError


def _pool(seed=0, m=6, n=40, c=3):
    rng = np.random.default_rng(seed)
    in_mask = rng.random((m, n)).argsort(0) < m // 2  # each record IN half of the models
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, c))
    logits[:, np.arange(n), labels] += 2.0 * in_mask
    return logits, in_mask, labels


def test_loss_is_the_targets_log_probability_of_the_label():
    logits, in_mask, labels = _pool()
    got = score_attack("loss", logits, in_mask, labels, target=2)
    want = log_softmax(logits[2], axis=-1)[np.arange(len(labels)), labels]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert got.dtype == np.float64 and got.shape == (40,)


def test_three_and_four_dimensional_logits_agree():
    logits, in_mask, labels = _pool()
    for name in ("lira-online-fixed", "rmia-offline"):
        pop = np.random.default_rng(1).normal(size=(6, 25, 3))
        kw = dict(population_logits=pop, population_labels=np.arange(25) % 3)
        a = score_attack(name, logits, in_mask, labels, 1, **kw)
        b = score_attack(name, logits[:, None], in_mask, labels, 1,
                         population_logits=pop[:, None], population_labels=kw["population_labels"])
        np.testing.assert_array_equal(a, b)


def test_the_targets_own_membership_row_never_reaches_the_attack():
    logits, in_mask, labels = _pool()
    flipped = in_mask.copy()
    flipped[0] = ~flipped[0]  # the truth the attack must not see
    for name in ("lira-online-fixed", "lira-offline-fixed", "calibrated-loss"):
        np.testing.assert_array_equal(score_attack(name, logits, in_mask, labels, 0),
                                      score_attack(name, logits, flipped, labels, 0), err_msg=name)


def test_params_reach_the_attack_and_unknown_names_are_config_errors():
    logits, in_mask, labels = _pool()
    pop = np.random.default_rng(2).normal(size=(6, 30, 3))
    kw = dict(population_logits=pop, population_labels=np.arange(30) % 3)
    a = score_attack("rmia-offline", logits, in_mask, labels, **kw, params={"gamma": 1.0})
    b = score_attack("rmia-offline", logits, in_mask, labels, **kw, params={"gamma": 4.0})
    assert not np.array_equal(a, b)
    with pytest.raises(ConfigError, match="unknown attack 'los'"):
        score_attack("los", logits, in_mask, labels)
