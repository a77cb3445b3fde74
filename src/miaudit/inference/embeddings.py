"""Penultimate-layer embeddings: the feature space in which the geometric outlier measures and the
t-SNE map are computed (``AuditModel.embed``, the input of the classification head)."""

from __future__ import annotations

import numpy as np
import torch

from miaudit.models import AuditModel


@torch.no_grad()
def embed(model: AuditModel, x: np.ndarray, *, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """``model.embed`` of every record of ``x``, in batches, as it stands (the caller sets eval mode).

    Parameters
    ----------
    x : (N, ...) float32 records

    Returns
    -------
    (N, D) float32; (0, 0) when ``x`` is empty
    """
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device)
        out.append(model.embed(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
