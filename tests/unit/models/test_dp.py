"""DP conversion (make_private_compatible): Opacus-valid models, GroupNorm for BatchNorm, one DP-SGD step."""

from __future__ import annotations

import pytest
import torch
from opacus import PrivacyEngine
from opacus.validators import ModuleValidator
from torch import nn

from miaudit.models import AuditModel
from miaudit.models.dp import make_private_compatible

from tiny_models import BATCH, N_CLASSES, NAMES, _batch_norm_params, _build, _one_shape


@pytest.mark.parametrize("name", NAMES)
def test_make_private_compatible(name: str) -> None:
    shape = _one_shape(name)
    model = _build(name, shape, _batch_norm_params(name))
    private = make_private_compatible(model)
    assert private.training
    assert ModuleValidator.validate(private, strict=True) == []
    private.eval()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in private.modules())
    x = torch.randn(BATCH, *shape)
    assert private(x).shape == (BATCH, N_CLASSES)
    if private.cam_layer is not None:
        assert any(m is private.cam_layer for m in private.modules())
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in private.cam_layer.modules())
    if "norm" in _batch_norm_params(name):
        # the original is untouched, and the conversion equals building with norm="group"
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        built = _build(name, shape, {"norm": "group"})
        assert [repr(m) for m in private.modules()] == [repr(m) for m in built.modules()]
        assert {k: v.shape for k, v in private.state_dict().items()} == {
            k: v.shape for k, v in built.state_dict().items()
        }


@pytest.mark.filterwarnings("ignore:Secure RNG turned off:UserWarning")  # fine for a test
@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")  # inputs need no grad
@pytest.mark.parametrize("name", NAMES)
def test_converted_model_takes_a_dp_sgd_step(name: str) -> None:
    """Opacus computes per-sample gradients for every layer (GroupNorm included) and steps."""
    shape = _one_shape(name)
    model = make_private_compatible(_build(name, shape, _batch_norm_params(name)))
    before = [p.detach().clone() for p in model.parameters()]
    data = torch.utils.data.TensorDataset(torch.randn(4, *shape), torch.arange(4) % N_CLASSES)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    private, optimizer, loader = PrivacyEngine().make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0, max_grad_norm=1.0
    )
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(private(x), y).backward()
        optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


class _Tiny(AuditModel):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean((2, 3))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


def test_make_private_compatible_replaces_a_module_registered_twice() -> None:
    model = _Tiny()
    model.cam_layer = model.bn  # nn.Module.__setattr__ registers it as a second child
    private = make_private_compatible(model)
    assert isinstance(private.bn, nn.GroupNorm)
    assert private._modules["cam_layer"] is private.bn
    assert ModuleValidator.validate(private, strict=True) == []


def test_make_private_compatible_repoints_a_plain_cam_layer_attribute() -> None:
    model = _Tiny()
    object.__setattr__(model, "cam_layer", model.bn)  # an attribute, not a registered child
    private = make_private_compatible(model)
    assert private.cam_layer is private.bn
    assert isinstance(private.cam_layer, nn.GroupNorm)
