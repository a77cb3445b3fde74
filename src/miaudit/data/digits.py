"""`digits`: scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes).

No files and no network: the data ships inside scikit-learn (``sklearn.datasets.load_digits``),
which makes it the smallest real image dataset for quick runs and tests. Pixel values are
counts 0..16 (of a 4x4 block of the original 32x32 bitmap), scaled here to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.data.base import Dataset, NoParams, register_dataset


@register_dataset(
    "digits",
    kind="image",
    description="scikit-learn's embedded 8x8 handwritten digits: 1,797 images, 10 classes (no files needed)",
    params=NoParams,
)
def load_digits(params: NoParams, data_dir: Path | None, seed: int) -> Dataset:
    """x (1797, 1, 8, 8) float32 = pixel counts / 16; ids follow scikit-learn's order."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.float32)[:, None] / np.float32(16.0)
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(
        name="digits",
        x=x,
        y=y,
        ids=np.arange(len(y), dtype=np.int64),
        kind="image",
        class_names=tuple(str(k) for k in range(10)),
        source="sklearn.datasets.load_digits",
    )
