import numpy as np
import pytest

from miaudit.data import make_splits
from miaudit.errors import ConfigError
from miaudit.pipeline.pool import membership_design, member_seed


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
