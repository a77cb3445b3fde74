"""The pool's membership design and member seeds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.pipeline.pool import membership_design, member_seed


@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_membership_design_is_balanced(m):
    mask = membership_design(m, 1001, seed=5)
    assert mask.shape == (m, 1001) and mask.dtype == bool
    assert (mask.sum(axis=0) == m // 2).all()  # every record IN for exactly M/2 models
    per_model = mask.sum(axis=1)
    assert np.all(np.abs(per_model - 1001 / 2) < 5 * np.sqrt(1001 / 4))  # about half each
    assert np.array_equal(mask, membership_design(m, 1001, seed=5))
    assert not np.array_equal(mask, membership_design(m, 1001, seed=6))


def test_member_seeds_differ():
    seeds = {member_seed(0, m) for m in range(64)}
    assert len(seeds) == 64
    assert member_seed(0, 3) == member_seed(0, 3) != member_seed(1, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16).map(lambda k: 2 * k), st.integers(1, 400), st.integers(0, 2**32 - 1))
def test_membership_design_balanced_for_any_size(m, n, seed):
    mask = membership_design(m, n, seed)
    assert (mask.sum(axis=0) == m // 2).all()
