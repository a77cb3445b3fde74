"""Shared tiny, seeded fixtures: small synthetic data, a small MLP, a 4-model pool."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.config import load_config

#: a run small enough for unit/integration tests (seconds on 2 cores)
TINY = [
    "data.params.n_records=1400",
    "data.params.n_features=60",
    "data.params.n_classes=5",
    "data.params.n_parents=3",
    "data.params.planted_fraction=0.05",
    "data.splits.audit=600",
    "data.splits.population=300",
    "data.splits.validation=100",
    "data.splits.test=300",
    "model.name=mlp",
    "model.params.hidden=[64]",
    "train.epochs=10",
    "train.lr=0.003",
    "train.batch_size=64",
    "pool.n_models=4",
    "runtime.threads=1",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture
def tiny_config(tiny_overrides):
    return load_config(None, tiny_overrides)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
