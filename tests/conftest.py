"""Shared tiny, seeded fixtures: small synthetic data, a small MLP, a 4-model pool."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.pipeline.configure import load_config

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


@pytest.fixture(autouse=True)
def _plugins_forgotten():
    """A test that loads a plugin registers its names process-wide; forget them (and the plugin's
    module) afterwards, so later tests, e.g. the generated configuration reference, see miaudit's own."""
    import sys

    from miaudit.attacks import ATTACKS
    from miaudit.data import DATASETS
    from miaudit.defences import DEFENCES
    from miaudit.models import MODELS
    from miaudit.training.recipes import RECIPES

    registries = [ATTACKS, DATASETS, DEFENCES, MODELS, RECIPES]
    before = [r.names() for r in registries]
    modules = set(sys.modules)
    yield
    for registry, names in zip(registries, before):
        for name in set(registry.names()) - set(names):
            registry.remove(name)
    for name in set(sys.modules) - modules:
        if name.startswith("miaudit_plugin_"):
            del sys.modules[name]


@pytest.fixture
def one_thread_fresh_context():
    """One torch thread in this process (the arithmetic of one-thread workers, so weights can be
    compared byte for byte), and no member context left behind for the next test."""
    import torch

    from miaudit.pipeline.members import release_context

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    release_context()
