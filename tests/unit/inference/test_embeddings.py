"""Embeddings: model.embed of every record, in batches, whatever the batch size."""

from __future__ import annotations

import numpy as np
import torch

from miaudit.inference.embeddings import embed
from miaudit.models import build_model


def test_embed_in_batches_equals_one_call_and_keeps_the_order():
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [8]}, (5,), 3).eval()
    x = np.random.default_rng(0).random((23, 5)).astype(np.float32)
    with torch.no_grad():
        whole = model.embed(torch.from_numpy(x)).numpy()
    got = embed(model, x, device=torch.device("cpu"), batch_size=4)  # 6 batches, the last of 3
    assert got.shape == (23, whole.shape[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(embed(model, x[::-1].copy(), device=torch.device("cpu"), batch_size=5), whole[::-1],
                               rtol=1e-6, atol=1e-6)


def test_no_records_no_embeddings():
    model = build_model("mlp", {"hidden": [8]}, (5,), 3).eval()
    assert embed(model, np.zeros((0, 5), np.float32), device=torch.device("cpu")).shape == (0, 0)
