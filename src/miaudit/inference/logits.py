"""A model's logits on records under the audit's queries (identity, and for images flips and shifts):
what the signals stage stores for every pool member and what a target audit asks of the target."""

from __future__ import annotations

import numpy as np
import torch

from miaudit.transforms import apply_query


@torch.no_grad()
def model_logits(
    model: torch.nn.Module, x: np.ndarray, queries: list[tuple[bool, int, int]], *, device: torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Logits (A, N, C) float32 of ``model`` on ``x`` under each query (tabular: identity only).

    ``batch_size`` default: 4096 rows for tabular inputs (about 2x the records/s of 1024 for the
    FCN on 2 cores, ``benchmarks/bench_signals.py``), 1024 images (activations stay small).
    """
    if batch_size is None:
        batch_size = 4096 if x.ndim == 2 else 1024
    model.eval()
    # channels-last convolutions, as in training (faster on CPU; the same function)
    channels_last = x.ndim == 4 and any(isinstance(mod, torch.nn.Conv2d) for mod in model.modules())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    outs = []
    for q in queries:
        chunks = []
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device)
            if xb.ndim == 4:
                xb = apply_query(xb, q)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
            chunks.append(model(xb).float().cpu().numpy())
        outs.append(np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32))
    return np.stack(outs).astype(np.float32)
