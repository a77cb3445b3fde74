"""Helpers for the model tests (tests/unit/models/): every registered model built small and seeded."""

from __future__ import annotations

import torch
from torch import nn

from miaudit.models import MODELS, AuditModel, build_model

N_CLASSES = 7  # not 10 or 100, so a hard-coded class count shows up
BATCH = 2
SHAPES: dict[str, list[tuple[int, ...]]] = {
    "image": [(1, 28, 28), (3, 32, 32), (1, 8, 8)],  # Fashion-MNIST, CIFAR, sklearn digits
    "tabular": [(600,)],  # Purchase100
    "any": [(600,), (1, 28, 28)],
}
CASES = [(name, shape) for name, spec in MODELS.items() for shape in SHAPES[spec.inputs]]
CASE_IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape in CASES]
NAMES = MODELS.names()


def _build(name: str, shape: tuple[int, ...], params: dict | None = None, seed: int = 0) -> AuditModel:
    torch.manual_seed(seed)
    return build_model(name, params or {}, shape, N_CLASSES).eval()


def _one_shape(name: str) -> tuple[int, ...]:
    return SHAPES[MODELS.get(name).inputs][-1]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _batch_norm_params(name: str) -> dict:
    """The model's params with BatchNorm where it has a ``norm`` choice (so DP conversion has work to do)."""
    return {"norm": "batch"} if "norm" in MODELS.get(name).params.model_fields else {}
