"""The model interface the pipeline relies on, and the model registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from miaudit._registry import Registry
from miaudit._validation import format_validation_error
from miaudit.errors import ConfigError

Norm = Literal["batch", "group", "none"]


class AuditModel(nn.Module):
    """A classifier that also exposes its penultimate features and its Grad-CAM layer.

    Subclasses implement ``embed`` (inputs -> penultimate features) and ``head``
    (features -> logits); ``forward`` is ``head(embed(x))``.

    ``cam_layer`` (the last convolutional block, for Grad-CAM) must be a read-only *property*
    returning a submodule, not an attribute assigned in ``__init__``: nn.Module would register
    an assigned module twice (duplicate state-dict keys that safetensors refuses), and a
    property stays correct after deep copies and BatchNorm→GroupNorm conversion.
    """

    #: None for models without convolutions; convolutional models override it with a property
    cam_layer: nn.Module | None = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B, D)
        raise NotImplementedError

    def head(self, h: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, C)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class NoModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


BuildFn = Callable[[BaseModel, tuple[int, ...], int], AuditModel]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: BuildFn  # (params, input_shape, n_classes) -> AuditModel
    params: type[BaseModel]
    inputs: Literal["tabular", "image", "any"]
    description: str


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str, *, params: type[BaseModel] = NoModelParams, inputs: Literal["tabular", "image", "any"], description: str
) -> Callable[[BuildFn], BuildFn]:
    """Register ``fn(params, input_shape, n_classes) -> AuditModel`` under ``name``."""

    def add(fn: BuildFn) -> BuildFn:
        MODELS.add(name, ModelSpec(name=name, build=fn, params=params, inputs=inputs, description=description))
        return fn

    return add


def build_model(name: str, params: dict | BaseModel, input_shape: tuple[int, ...], n_classes: int) -> AuditModel:
    """Build a registered model; ``params`` may be a dict (validated) or the params model itself."""
    spec = MODELS.get(name, where="model.name")
    if isinstance(params, spec.params):
        p = params
    else:
        try:
            p = spec.params.model_validate(params or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix="model.params")) from None
    return spec.build(p, tuple(input_shape), n_classes)


def norm_layer(kind: Norm, channels: int, groups: int = 8) -> nn.Module:
    """BatchNorm, GroupNorm (DP-safe: no cross-sample statistics) or identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        g = min(groups, channels)
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    return nn.Identity()
