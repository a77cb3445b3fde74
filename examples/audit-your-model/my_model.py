"""The architecture of the model to audit, registered for miaudit as ``my-net``.

This is the only miaudit-specific code: a class with ``embed`` (penultimate features) and
``head`` (logits), so the references can be built with the same architecture as your model.
``train_target.py`` imports ``MyNet`` from here and trains it with a plain PyTorch loop.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from miaudit.models import AuditModel, register_model


class MyNet(AuditModel):
    def __init__(self, n_in: int, n_classes: int, width: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.out = nn.Linear(width, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, width)
        return self.body(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:  # (B, width) -> (B, C)
        return self.out(h)


class MyNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(128, ge=1, description="hidden units per layer")


@register_model("my-net", params=MyNetParams, inputs="tabular", description="audit-your-model example: a 2-layer MLP")
def build_my_net(p: MyNetParams, input_shape: tuple[int, ...], n_classes: int) -> MyNet:
    return MyNet(int(np.prod(input_shape)), n_classes, p.width)
