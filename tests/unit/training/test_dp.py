"""DP-SGD's bookkeeping: Opacus's sampling rate and step count, and the pool's ε summary.
Private training itself (accounting against Opacus, clipping modes): integration/test_dp_training.py."""

from __future__ import annotations

import math

import pytest

from miaudit.training.dp import dp_summary, poisson_steps


@pytest.mark.parametrize(("n", "batch", "expected"), [(300, 64, (5, 0.2)), (256, 64, (4, 0.25)), (10, 64, (1, 1.0)),
                                                      (0, 64, (1, 1.0))])
def test_poisson_steps_is_opacus_loader_length(n, batch, expected):
    assert poisson_steps(n, batch) == expected
    steps, q = poisson_steps(n, batch)
    assert q * steps == pytest.approx(1.0) and steps == max(1, math.ceil(n / batch))


def _side(eps, steps=10):
    return {"extras": {"dp": {"epsilon": eps, "delta": 1e-5, "noise_multiplier": 1.1, "sample_rate": 0.1,
                              "steps": steps, "max_grad_norm": 1.0, "accountant": "rdp",
                              "grad_sample_mode": "ghost"}}}


def test_dp_summary_lists_each_member_and_the_pool_guarantee_is_the_largest_epsilon():
    s = dp_summary([_side(1.5), _side(2.5, steps=11), _side(2.0)])
    assert s["epsilon"] == [1.5, 2.5, 2.0] and s["epsilon_max"] == 2.5 and s["steps"] == [10, 11, 10]
    assert s["accountant"] == "rdp" and s["target_epsilon"] is None


def test_dp_summary_is_none_unless_every_member_trained_privately():
    assert dp_summary([]) is None
    assert dp_summary([_side(1.0), {"extras": {}}]) is None
    assert dp_summary([{}]) is None
