"""Batched pool training (training/batched.py): which models and settings it refuses, and why."""

import pytest
import torch

from miaudit.models import build_model
from miaudit.training.batched import batched_unsupported, train_group


def build(seed, dropout):
    torch.manual_seed(seed)  # as pool.new_model
    return build_model("mlp", {"hidden": [32, 16], "dropout": dropout}, (40,), 4)


def test_batched_unsupported_names_the_reason():
    assert batched_unsupported(build_model("fcn", {"hidden": [8]}, (5,), 2)) is None
    assert "cnn" in batched_unsupported(build_model("cnn", {}, (1, 8, 8), 3))
    assert "recipes" in batched_unsupported(build_model("mlp", {}, (5,), 2), recipes=["l2"])
    with pytest.raises(ValueError, match="one rows tensor and one seed per model"):
        train_group([build(0, 0.0)], torch.zeros(4, 40), torch.zeros(4, dtype=torch.int64), [], None, seeds=[])
