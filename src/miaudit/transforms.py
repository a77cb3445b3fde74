"""Image transforms on batched tensors (no torchvision): flips, shifts, random crops.

Used twice: as deterministic *queries* for LiRA's augmented signals, and as random training
augmentation. Inputs are (B, C, H, W); shifts fill with zeros, like padding then cropping.
"""

from __future__ import annotations

import torch


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate by (dy, dx) pixels, filling with zeros (= pad then crop)."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def query_offsets(n_queries: int, max_shift: int = 2) -> list[tuple[bool, int, int]]:
    """The deterministic list of (flip, dy, dx) queries: identity, flip, then shifts with and without flip.

    >>> query_offsets(3)
    [(False, 0, 0), (True, 0, 0), (False, -2, -2)]
    """
    offsets = [(False, 0, 0), (True, 0, 0)]
    steps = [s for s in range(-max_shift, max_shift + 1, max(1, max_shift))]
    for dy in steps:
        for dx in steps:
            if dy == 0 and dx == 0:
                continue
            offsets += [(False, dy, dx), (True, dy, dx)]
    if n_queries > len(offsets):
        raise ValueError(f"at most {len(offsets)} augmented queries are defined, asked for {n_queries}")
    return offsets[:n_queries]


def apply_query(x: torch.Tensor, query: tuple[bool, int, int]) -> torch.Tensor:
    flip, dy, dx = query
    x = hflip(x) if flip else x
    return shift(x, dy, dx)


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Per-image random crop with zero padding and random horizontal flip (standard CIFAR augmentation)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h)[None, :])  # (B, H)
    cols = (ox[:, None] + torch.arange(w)[None, :])  # (B, W)
    idx_b = torch.arange(b)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        do = torch.rand(b, generator=generator) < 0.5
        out = torch.where(do[:, None, None, None], out.flip(-1), out)
    return out.contiguous()
