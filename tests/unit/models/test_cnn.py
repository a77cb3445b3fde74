"""The small CNN: its size, and channels-last giving the same outputs."""

from __future__ import annotations

import pytest
import torch

from miaudit.models import build_model

from tiny_models import _build, _n_params


def test_cnn_is_small() -> None:
    for shape in [(1, 28, 28), (3, 32, 32)]:
        assert 0.08e6 < _n_params(build_model("cnn", {}, shape, 10)) < 0.6e6


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_cnn_channels_last_matches_contiguous(norm: str) -> None:
    model = _build("cnn", (3, 32, 32), {"norm": norm})
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
