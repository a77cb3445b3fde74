"""The CNN learns: gradients flow through it on a trivially separable image task."""

from __future__ import annotations

import torch
from torch import nn

from tiny_models import _build


def test_cnn_learns_bright_vs_dark() -> None:
    """A sanity check that gradients flow: 8x8 images, dark (label 0) vs bright (label 1)."""
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 2
        x = 0.3 + 0.4 * y.float().view(n, 1, 1, 1) + 0.1 * torch.randn(n, 1, 8, 8, generator=gen)
        return x, y

    x, y = images(200)
    x_test, y_test = images(200)
    model = _build("cnn", (1, 8, 8)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):  # >= 0.99 test accuracy over seeds 0-5 and all three norms
        for idx in torch.randperm(200, generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.9
