"""Grad-CAM through Captum on the small CNN returns one map per image, of the image's size."""

import numpy as np
import pytest
import torch

from miaudit.models import build_model
from miaudit.inference.gradcam import gradcam_maps


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_gradcam_maps_have_the_image_size(shape, rng):
    torch.manual_seed(0)
    model = build_model("cnn", {"channels": [4, 8]}, shape, 10)
    x = rng.random((5, *shape)).astype(np.float32)
    maps = gradcam_maps(model, x, np.array([0, 1, 2, 3, 4]), batch_size=2)
    assert maps.shape == (5, shape[1], shape[2])
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_gradcam_needs_a_convolutional_layer():
    model = build_model("mlp", {"hidden": [8]}, (4,), 3)
    with pytest.raises(ValueError, match="no convolutional layer"):
        gradcam_maps(model, np.zeros((1, 4), np.float32), np.array([0]))
