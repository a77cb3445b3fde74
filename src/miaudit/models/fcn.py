"""The study's fully connected network for Purchase100/Texas100: 600-1024-512-256-128-C, tanh."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from miaudit.models.base import AuditModel, register_model


class FCNParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: tuple[int, ...] = Field((1024, 512, 256, 128), description="hidden layer widths (the study's)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    activation: str = Field("tanh", pattern="^(tanh|relu)$", description="the study used tanh")


class FCN(AuditModel):
    def __init__(self, n_in: int, n_classes: int, hidden: tuple[int, ...], dropout: float, activation: str) -> None:
        super().__init__()
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


@register_model("fcn", params=FCNParams, inputs="any", description="the study's FCN (600-1024-512-256-128-C, tanh)")
def build_fcn(p: FCNParams, input_shape: tuple[int, ...], n_classes: int) -> FCN:
    return FCN(math.prod(input_shape), n_classes, p.hidden, p.dropout, p.activation)


class MLPParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: tuple[int, ...] = Field((256,), description="hidden widths; small by design (< 200k params)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    activation: str = Field("relu", pattern="^(tanh|relu)$", description="relu trains small nets fastest")


@register_model("mlp", params=MLPParams, inputs="any", description="a small MLP (one hidden layer of 256 by default)")
def build_mlp(p: MLPParams, input_shape: tuple[int, ...], n_classes: int) -> FCN:
    return FCN(math.prod(input_shape), n_classes, p.hidden, p.dropout, p.activation)
