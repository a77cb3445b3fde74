"""An example plugin: your own dataset and model, registered by name for a miaudit config.

    miaudit run examples/my_plugin.yaml

Replace the fabricated blobs with your loader (read your files here; return a ``Dataset``)
and the network with yours (any ``AuditModel``: ``embed`` gives penultimate features for the
outlier analysis, ``head`` the logits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from miaudit.data import Dataset, register_dataset
from miaudit.models import AuditModel, register_model


class BlobParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_records: int = Field(3000, ge=10, description="records to draw")
    n_features: int = Field(20, ge=1, description="features per record")
    n_classes: int = Field(4, ge=2, description="classes (one Gaussian blob each)")


@register_dataset("my-blobs", kind="tabular", params=BlobParams,
                  description="example plugin: Gaussian blobs, one per class")
def load_blobs(p: BlobParams, data_dir: Path | None, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (p.n_classes, p.n_features))
    y = rng.integers(0, p.n_classes, p.n_records)
    x = (centres[y] + rng.normal(0.0, 1.5, (p.n_records, p.n_features))).astype(np.float32)
    return Dataset(name="my-blobs", x=x, y=y.astype(np.int64), ids=np.arange(p.n_records, dtype=np.int64),
                   kind="tabular", class_names=tuple(f"blob {k}" for k in range(p.n_classes)))


class TwoLayerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(64, ge=1, description="hidden units")


class TwoLayer(AuditModel):
    def __init__(self, n_in: int, n_classes: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, width), nn.ReLU())
        self.fc = nn.Linear(width, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, width)
        return self.body(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:  # (B, width) -> (B, C)
        return self.fc(h)


@register_model("my-two-layer", params=TwoLayerParams, inputs="tabular", description="example plugin: a two-layer ReLU net")
def build_two_layer(p: TwoLayerParams, input_shape: tuple[int, ...], n_classes: int) -> TwoLayer:
    return TwoLayer(int(np.prod(input_shape)), n_classes, p.width)
