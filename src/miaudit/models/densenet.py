"""`densenet-bc`: DenseNet-BC for CIFAR-sized images (bottleneck layers, compression 0.5).

Huang et al. 2017, "Densely Connected Convolutional Networks", Sec. 3 and Table 2: a 3x3 stem
conv with 2k channels, three dense blocks of n = (depth - 4) / 6 bottleneck layers
(norm-ReLU-conv1x1(4k)-norm-ReLU-conv3x3(k), concatenated to the input), transitions
norm-ReLU-conv1x1(compress by half)-avgpool2 between blocks, then norm-ReLU, global pool and a
linear layer. DenseNet-BC-100 with k = 12 has 769,162 parameters on CIFAR-10 (published: 0.8 M).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from miaudit.models.base import AuditModel, Norm, norm_layer, register_model
from miaudit.models.cnn import image_shape


class DenseNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: int = Field(100, description="total depth; (depth - 4) must be a positive multiple of 6 (40, 100, 190, ...)")
    growth: int = Field(12, ge=1, description="growth rate k: channels each bottleneck layer adds")
    # BatchNorm by default, as in the paper; use "group" (or make_private_compatible) for DP-SGD.
    norm: Norm = Field("batch", description="normalisation: batch (paper) | group (DP-safe) | none")

    @field_validator("depth")
    @classmethod
    def _bc_depth(cls, v: int) -> int:
        # checked at config load, so a bad depth fails before any data is read
        if v < 10 or (v - 4) % 6:
            raise ValueError(f"DenseNet-BC needs (depth - 4) to be a positive multiple of 6 (e.g. 40, 100, 190), got {v}")
        return v


class Bottleneck(nn.Module):
    """norm-ReLU-conv1x1(4k)-norm-ReLU-conv3x3(k); returns the input with the k new channels appended."""

    def __init__(self, c_in: int, growth: int, norm: Norm) -> None:
        super().__init__()
        bias = norm == "none"
        self.bn1 = norm_layer(norm, c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=bias)
        self.bn2 = norm_layer(norm, 4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=bias)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    """norm-ReLU-conv1x1 (halves the channels) then a 2x2 average pool (skipped on 1-pixel maps)."""

    def __init__(self, c_in: int, c_out: int, norm: Norm, pool: bool) -> None:
        layers: list[nn.Module] = [norm_layer(norm, c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=norm == "none")]
        if pool:
            layers.append(nn.AvgPool2d(2))
        super().__init__(*layers)


class DenseNetBC(AuditModel):
    """DenseNet-BC; ``embed`` is the globally pooled output of the final norm-ReLU."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, depth: int, growth: int, norm: Norm) -> None:
        super().__init__()
        c_in, h, w = in_shape
        n_layers = (depth - 4) // 6
        channels = 2 * growth
        self.conv1 = nn.Conv2d(c_in, channels, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i in range(3):
            block = []
            for _ in range(n_layers):
                block.append(Bottleneck(channels, growth, norm))
                channels += growth
            stages.append(nn.Sequential(*block))
            if i < 2:
                pool = min(h, w) >= 2
                stages.append(Transition(channels, channels // 2, norm, pool))
                channels //= 2
                if pool:
                    h, w = h // 2, w // 2
        self.dense = nn.Sequential(*stages)
        self.final = nn.Sequential(norm_layer(norm, channels), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_layer(self) -> nn.Module:  # type: ignore[override]
        """The final norm-ReLU after the last dense block; looked up on access so BN->GN swaps stay right."""
        return self.final

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.final(self.dense(self.conv1(x)))), 1)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


@register_model(
    "densenet-bc",
    params=DenseNetParams,
    inputs="image",
    description="DenseNet-BC (bottleneck, compression 0.5); depth 100, growth 12 -> 0.77 M params",
)
def build_densenet_bc(p: DenseNetParams, input_shape: tuple[int, ...], n_classes: int) -> DenseNetBC:
    return DenseNetBC(image_shape(input_shape, "densenet-bc"), n_classes, p.depth, p.growth, p.norm)
