"""`resnet18`: ResNet-18 with the CIFAR stem, as used by LiRA/RMIA and most MIA papers.

He et al. 2016, "Deep Residual Learning for Image Recognition"; the CIFAR variant replaces the
ImageNet stem (7x7 stride-2 conv + max-pool) with one 3x3 stride-1 conv, so 32x32 inputs keep
their resolution into ``layer1``. BasicBlocks [2, 2, 2, 2] at widths 64·w, 128·w, 256·w, 512·w.
With ``width=1`` on CIFAR-10 it has 11,173,962 parameters. At ≈30 img/s on 2 CPU cores it is
a GPU model; ``width=0.25`` (≈0.7 M parameters) is the CPU-sized variant.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from miaudit.models.base import AuditModel, Norm, norm_layer, register_model
from miaudit.models.cnn import image_shape


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: float = Field(
        1.0, gt=0.0, le=8.0, description="channel multiplier: stage widths are round(64·width)·(1, 2, 4, 8)"
    )
    # BatchNorm by default, as in the published ResNet-18 results the audits compare with;
    # use "group" (or miaudit.models.dp.make_private_compatible) for DP-SGD.
    norm: Norm = Field("batch", description="normalisation: batch (standard) | group (DP-safe) | none")


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; a 1x1 conv projects the shortcut when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: Norm) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.bn1 = norm_layer(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=bias)
        self.bn2 = norm_layer(norm, c_out)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias), norm_layer(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(AuditModel):
    """CIFAR-stem ResNet-18; ``embed`` is the globally pooled output of ``layer4``."""

    def __init__(self, in_channels: int, n_classes: int, width: float, norm: Norm) -> None:
        super().__init__()
        base = max(1, round(64 * width))
        widths = [base, 2 * base, 4 * base, 8 * base]
        self.conv1 = nn.Conv2d(in_channels, base, 3, stride=1, padding=1, bias=norm == "none")
        self.bn1 = norm_layer(norm, base)
        self.relu = nn.ReLU()
        stages: list[nn.Sequential] = []
        c_in = base
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, c_out, stride, norm), BasicBlock(c_out, c_out, 1, norm)))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_layer(self) -> nn.Module:  # type: ignore[override]
        """``layer4``, looked up on access so copies and BN->GN swaps stay right."""
        return self.layer4

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(self.pool(out), 1)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


@register_model(
    "resnet18",
    params=ResNetParams,
    inputs="image",
    description="ResNet-18, CIFAR 3x3 stem, width multiplier (11.2 M params at width 1; GPU-sized)",
)
def build_resnet18(p: ResNetParams, input_shape: tuple[int, ...], n_classes: int) -> ResNet18:
    c, _, _ = image_shape(input_shape, "resnet18")
    return ResNet18(c, n_classes, p.width, p.norm)
