"""sklearn's digits as an image dataset."""

from __future__ import annotations

import numpy as np

from dataset_files import load


def test_digits():
    from sklearn.datasets import load_digits

    ds = load("digits", None)
    ref = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x[:, 0] * 16, ref.images)
    np.testing.assert_array_equal(ds.y, ref.target)
    assert ds.x.max() == 1.0 and ds.n_classes == 10 and ds.kind == "image"
