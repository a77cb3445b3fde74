"""The disjoint audit/population/validation/test splits of a dataset."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data import make_splits
from miaudit.errors import ConfigError


def test_splits_are_disjoint_and_sized(rng):
    s = make_splits(1000, audit=400, population=200, validation=100, test=250, rng=rng)
    parts = list(s.as_dict().values())
    assert [len(p) for p in parts] == [400, 200, 100, 250]
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx)
    assert allidx.min() >= 0 and allidx.max() < 1000


def test_splits_are_seeded():
    a = make_splits(100, audit=50, population=10, validation=10, test=10, rng=np.random.default_rng(3))
    b = make_splits(100, audit=50, population=10, validation=10, test=10, rng=np.random.default_rng(3))
    c = make_splits(100, audit=50, population=10, validation=10, test=10, rng=np.random.default_rng(4))
    assert np.array_equal(a.audit, b.audit)
    assert not np.array_equal(a.audit, c.audit)


def test_splits_larger_than_dataset_are_refused(rng):
    with pytest.raises(ConfigError, match="only 100 records"):
        make_splits(100, audit=80, population=10, validation=10, test=10, rng=rng)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 2000),
    st.lists(st.integers(0, 500), min_size=4, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_splits_disjoint_whenever_they_fit(n, sizes, seed):
    sizes[0] = max(sizes[0], 2)
    if sum(sizes) > n:
        return
    s = make_splits(n, audit=sizes[0], population=sizes[1], validation=sizes[2], test=sizes[3],
                    rng=np.random.default_rng(seed))
    allidx = np.concatenate(list(s.as_dict().values()))
    assert len(np.unique(allidx)) == len(allidx) == sum(sizes)
