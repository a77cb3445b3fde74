"""Grad-CAM maps (Selvaraju et al., ICCV 2017) through Captum's ``LayerGradCam``.

The layer is the model's ``cam_layer`` (the last convolutional block). Maps are computed for
each record's given label, passed through a ReLU (only evidence *for* the class), upsampled to
the image size with ``LayerAttribution.interpolate`` (bilinear) and scaled to [0, 1] per image.
"""

from __future__ import annotations

import numpy as np
import torch

from miaudit.models import AuditModel


def gradcam_maps(
    model: AuditModel, x: np.ndarray, targets: np.ndarray, *, device: torch.device | None = None, batch_size: int = 64
) -> np.ndarray:
    """Grad-CAM of ``model`` for each image toward its ``targets`` class.

    Parameters
    ----------
    model : an AuditModel with a ``cam_layer``
    x : (B, C, H, W) float32 images
    targets : (B,) int classes to explain

    Returns
    -------
    (B, H, W) float32 in [0, 1]
    """
    from captum.attr import LayerAttribution, LayerGradCam

    layer = model.cam_layer
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no convolutional layer for Grad-CAM")
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    cam = LayerGradCam(model, layer)
    h, w = x.shape[-2:]
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)).to(device)
        tb = torch.as_tensor(np.asarray(targets[i : i + batch_size], dtype=np.int64), device=device)
        attr = cam.attribute(xb, target=tb, relu_attributions=True)
        up = LayerAttribution.interpolate(attr, (h, w), interpolate_mode="bilinear")[:, 0]
        up = up.detach().cpu().numpy().astype(np.float32)
        peak = up.reshape(len(up), -1).max(1)
        out.append(up / np.where(peak > 0, peak, 1.0)[:, None, None])
    return np.concatenate(out) if out else np.zeros((0, h, w), np.float32)
