"""The FCN: its parameter count against the formula."""

from __future__ import annotations

from miaudit.models import build_model

from tiny_models import _n_params


def test_fcn_param_count_purchase100() -> None:
    # 600-1024-512-256-128-100, weights + biases: 1,317,348 (DESIGN.md's "1.32 M")
    expected = 600 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 100 + 100
    assert expected == 1_317_348
    assert _n_params(build_model("fcn", {}, (600,), 100)) == expected
