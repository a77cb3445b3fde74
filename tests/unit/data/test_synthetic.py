import numpy as np

from miaudit.data.synthetic import PLANTED_KINDS, SyntheticPurchaseParams, generate_synthetic_purchase


def small(**kw):
    base = dict(n_records=3000, n_features=100, n_classes=10, n_parents=4, planted_fraction=0.06)
    base.update(kw)
    return SyntheticPurchaseParams(**base)


def test_deterministic_for_a_seed():
    a = generate_synthetic_purchase(small(), seed=1)
    b = generate_synthetic_purchase(small(), seed=1)
    c = generate_synthetic_purchase(small(), seed=2)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.planted, b.planted)
    assert not np.array_equal(a.x, c.x)


def test_shapes_and_binary_features():
    ds = generate_synthetic_purchase(small(), seed=0)
    assert ds.x.shape == (3000, 100) and ds.x.dtype == np.float32
    assert set(np.unique(ds.x)) <= {0.0, 1.0}
    assert ds.y.min() >= 0 and ds.y.max() < 10
    assert ds.n_classes == 10 and ds.kind == "tabular"
    assert np.array_equal(ds.ids, np.arange(3000))


def test_planted_records_are_recorded_by_kind():
    ds = generate_synthetic_purchase(small(), seed=0)
    kinds, counts = np.unique(ds.planted[ds.planted != ""], return_counts=True)
    assert set(kinds) == set(PLANTED_KINDS)
    assert counts.sum() == round(0.06 * 3000)
    assert counts.min() >= 55  # split about evenly over the three kinds


def test_heavy_noise_records_are_farther_from_their_class():
    ds = generate_synthetic_purchase(small(planted_fraction=0.1), seed=0)
    natural = ds.planted == ""
    centroids = np.stack([ds.x[natural & (ds.y == k)].mean(0) for k in range(10)])
    dist = np.abs(ds.x - centroids[ds.y]).sum(1)
    for kind in PLANTED_KINDS:
        assert dist[ds.planted == kind].mean() > dist[natural].mean() * 1.1, kind


def test_no_planted_records_when_fraction_is_zero():
    ds = generate_synthetic_purchase(small(planted_fraction=0.0), seed=0)
    assert (ds.planted == "").all()
