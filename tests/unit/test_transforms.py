"""Image transforms on (B, C, H, W) batches: flips, zero-filled shifts, the query list, random crops."""

from __future__ import annotations

import pytest
import torch

from miaudit.transforms import apply_query, hflip, query_offsets, random_crop_flip, shift


def _img() -> torch.Tensor:
    return torch.arange(1, 17, dtype=torch.float32).reshape(1, 1, 4, 4)  # values 1..16, row by row


def test_shift_moves_pixels_and_fills_with_zeros():
    x = _img()
    down_right = shift(x, 1, 2)[0, 0]
    assert down_right[0].tolist() == [0, 0, 0, 0] and down_right[:, :2].abs().sum() == 0
    assert down_right[1, 2:].tolist() == [1, 2] and down_right[3, 2:].tolist() == [9, 10]
    up_left = shift(x, -1, -1)[0, 0]
    assert up_left[0, :3].tolist() == [6, 7, 8] and up_left[3].tolist() == [0, 0, 0, 0]
    assert shift(x, 0, 0) is x
    # a shift and its inverse give back the pixels that stayed inside
    torch.testing.assert_close(shift(shift(x, 1, 1), -1, -1)[..., :3, :3], x[..., :3, :3])


def test_hflip_and_queries():
    x = _img()
    assert hflip(x)[0, 0, 0].tolist() == [4, 3, 2, 1]
    torch.testing.assert_close(hflip(hflip(x)), x)
    qs = query_offsets(18)
    assert qs[:2] == [(False, 0, 0), (True, 0, 0)] and len(set(qs)) == 18
    assert all((f, dy, dx) in qs for f in (False, True) for dy in (-2, 0, 2) for dx in (-2, 0, 2))
    with pytest.raises(ValueError, match="at most 18 augmented queries"):
        query_offsets(19)
    torch.testing.assert_close(apply_query(x, (True, 0, 1)), shift(hflip(x), 0, 1))


def test_random_crop_flip_is_seeded_and_each_output_is_a_crop_of_its_padded_input():
    x = torch.rand(16, 3, 6, 6)
    a = random_crop_flip(x, 2, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 2, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        crops = [padded[i, :, oy:oy + 6, ox:ox + 6] for oy in range(5) for ox in range(5)]
        assert any(torch.equal(a[i], c) or torch.equal(a[i], c.flip(-1)) for c in crops), i
    assert not torch.equal(a, random_crop_flip(x, 2, torch.Generator().manual_seed(6)))
    # without flip and without padding, nothing moves
    torch.testing.assert_close(random_crop_flip(x, 0, torch.Generator().manual_seed(0), flip=False), x)
