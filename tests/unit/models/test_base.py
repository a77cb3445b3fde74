"""Models: shapes, the embed/head contract, Grad-CAM layers, seeding, strict params.

These tests iterate over the whole registry, so a newly registered model is covered without
editing this file. Heavy models run on batches of 2 only. Parameter counts and specifics are in
test_<model>.py, DP conversion in test_dp.py; the helpers are in tests/tiny_models.py.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam

from miaudit.errors import ConfigError
from miaudit.models import MODELS, build_model

from tiny_models import BATCH, CASE_IDS, CASES, N_CLASSES, NAMES, _build, _one_shape

# ---- the AuditModel contract, for every registered model --------------------------------------


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_logits_shape_and_embed_head_contract(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape)
    x = torch.randn(BATCH, *shape)
    with torch.no_grad():
        logits = model(x)
        h = model.embed(x)
        again = model.head(h)
    assert logits.shape == (BATCH, N_CLASSES)
    assert torch.isfinite(logits).all()
    assert h.ndim == 2 and h.shape[0] == BATCH
    torch.testing.assert_close(again, logits, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "shape"), CASES, ids=CASE_IDS)
def test_grad_cam_on_cam_layer(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape)
    if MODELS.get(name).inputs == "image":
        assert model.cam_layer is not None, f"{name}: an image model must name its Grad-CAM layer"
    if model.cam_layer is None:
        pytest.skip(f"{name} has no convolutional layer")
    assert any(m is model.cam_layer for m in model.modules()), "cam_layer must be a submodule"
    x = torch.randn(BATCH, *shape)
    y = torch.arange(BATCH) % N_CLASSES
    attr = LayerGradCam(model, model.cam_layer).attribute(x, target=y)
    maps = LayerAttribution.interpolate(attr, tuple(shape[-2:]))
    assert maps.shape == (BATCH, 1, *shape[-2:])
    assert torch.isfinite(maps).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights(name: str) -> None:
    shape = _one_shape(name)
    a, b = _build(name, shape, seed=0).state_dict(), _build(name, shape, seed=0).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", NAMES)
def test_params_model_is_strict_and_frozen(name: str) -> None:
    cfg = MODELS.get(name).params.model_config
    assert cfg.get("extra") == "forbid" and cfg.get("frozen") is True
    with pytest.raises(ValueError, match="no_such_param"):
        build_model(name, {"no_such_param": 1}, _one_shape(name), N_CLASSES)


@pytest.mark.parametrize("name", ["cnn", "resnet18", "densenet-bc"])
def test_every_param_is_described(name: str) -> None:
    for field, info in MODELS.get(name).params.model_fields.items():
        assert info.description, f"{name}.params.{field} has no description"


@pytest.mark.parametrize("name", ["cnn", "resnet18", "densenet-bc"])
@pytest.mark.parametrize("shape", [(600,), (28, 28), (0, 28, 28)])
def test_image_models_reject_non_image_shapes(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        build_model(name, {}, shape, N_CLASSES)
