"""The dataset registry: every real loader registered with its files, description and source."""

from __future__ import annotations

from miaudit.data import DATASETS


def test_every_real_loader_is_registered_with_its_files():
    names = set(DATASETS.names())
    assert {"purchase100", "texas100", "cifar10", "cifar100", "fashion-mnist", "mnist", "digits", "npz", "csv"} <= names
    for name in ("purchase100", "texas100", "cifar10", "cifar100", "fashion-mnist", "mnist"):
        spec = DATASETS.get(name)
        assert spec.files and spec.description
    assert DATASETS.get("fashion-mnist").default_dirs[0] == "/usr/share/datasets/fashion-mnist"
    assert DATASETS.get("cifar10").url.startswith("https://www.cs.toronto.edu/")
    assert DATASETS.get("purchase100").url is None  # no stable pinned location
