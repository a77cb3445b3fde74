"""DenseNet-BC: parameter count against the paper, depth checks."""

from __future__ import annotations

import pytest
import torch

from miaudit.errors import ConfigError
from miaudit.models import build_model

from tiny_models import BATCH, _n_params


def test_densenet_bc_100_12_param_count_cifar10() -> None:
    n = _n_params(build_model("densenet-bc", {}, (3, 32, 32), 10))
    assert n == 769_162
    assert abs(n - 0.8e6) / 0.8e6 < 0.05  # Huang et al. 2017, Table 2: 0.8 M


@pytest.mark.parametrize("depth", [99, 101, 4, 7, -2])
def test_densenet_bad_depth_is_a_config_error(depth: int) -> None:
    with pytest.raises(ConfigError, match=r"model\.params\.depth.*\(depth - 4\).*multiple of 6"):
        build_model("densenet-bc", {"depth": depth}, (3, 32, 32), 10)


def test_densenet_small_depth_builds() -> None:
    model = build_model("densenet-bc", {"depth": 10, "growth": 4}, (3, 32, 32), 10)  # 1 layer per block
    assert model(torch.randn(BATCH, 3, 32, 32)).shape == (BATCH, 10)
