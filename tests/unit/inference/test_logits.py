"""model_logits: a model's logits under the audit's queries, in batches, as float32."""

from __future__ import annotations

import numpy as np
import torch

from miaudit.inference.logits import model_logits
from miaudit.transforms import query_offsets

CPU = torch.device("cpu")


def test_tabular_logits_are_the_forward_pass_whatever_the_batch():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    x = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    want = model(torch.from_numpy(x)).detach().numpy()
    for batch in (1, 4, 64):
        got = model_logits(model, x, [(False, 0, 0)], device=CPU, batch_size=batch)
        assert got.shape == (1, 11, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-6)


def test_image_queries_are_the_flipped_and_shifted_inputs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1 * 6 * 6, 4))
    x = np.random.default_rng(1).normal(size=(7, 1, 6, 6)).astype(np.float32)
    queries = query_offsets(2)  # identity, horizontal flip
    got = model_logits(model, x, queries, device=CPU)
    assert got.shape == (2, 7, 4)
    plain = model(torch.from_numpy(x)).detach().numpy()
    flipped = model(torch.from_numpy(np.ascontiguousarray(x[..., ::-1]))).detach().numpy()
    np.testing.assert_allclose(got[0], plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], flipped, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got[0], got[1])  # the flip is a different input, not a copy
