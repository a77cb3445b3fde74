"""Datasets: a registry of loaders, the Dataset record, and seeded disjoint splits."""

from miaudit.data.base import DATASETS, Dataset, DatasetSpec, ExpectedFile, load_dataset, register_dataset
from miaudit.data.splits import Splits, make_splits

# Every loader module registers itself on import (no discovery magic).
from miaudit.data import synthetic  # noqa: F401  isort: skip
from miaudit.data import purchase  # noqa: F401  isort: skip
from miaudit.data import texas  # noqa: F401  isort: skip
from miaudit.data import cifar  # noqa: F401  isort: skip
from miaudit.data import idx  # noqa: F401  isort: skip
from miaudit.data import digits  # noqa: F401  isort: skip
from miaudit.data import custom  # noqa: F401  isort: skip

__all__ = [
    "DATASETS", "Dataset", "DatasetSpec", "ExpectedFile", "Splits", "load_dataset", "make_splits", "register_dataset",
]
