"""ResNet-18: parameter count against the LiRA/RMIA code bases, fractional width."""

from __future__ import annotations

from miaudit.models import build_model

from tiny_models import _n_params


def test_resnet18_param_count_cifar10() -> None:
    # the CIFAR-stem ResNet-18 of the LiRA/RMIA code bases: 11.17 M
    assert _n_params(build_model("resnet18", {}, (3, 32, 32), 10)) == 11_173_962


def test_resnet18_fractional_width() -> None:
    model = build_model("resnet18", {"width": 0.25}, (3, 32, 32), 10)
    assert model.conv1.out_channels == 16
    assert model.fc.in_features == 128
    assert 0.6e6 < _n_params(model) < 0.8e6
