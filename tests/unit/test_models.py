"""Models: shapes, the embed/head contract, Grad-CAM layers, parameter counts, DP conversion.

Shape, contract and determinism tests iterate over the whole registry, so a newly registered
model is covered without editing this file. Heavy models run on batches of 2 only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from opacus import PrivacyEngine
from opacus.validators import ModuleValidator
from torch import nn

from miaudit.errors import ConfigError
from miaudit.models import MODELS, AuditModel, build_model
from miaudit.models.dp import make_private_compatible

N_CLASSES = 7  # not 10 or 100, so a hard-coded class count shows up
BATCH = 2
SHAPES: dict[str, list[tuple[int, ...]]] = {
    "image": [(1, 28, 28), (3, 32, 32), (1, 8, 8)],  # Fashion-MNIST, CIFAR, sklearn digits
    "tabular": [(600,)],  # Purchase100
    "any": [(600,), (1, 28, 28)],
}
CASES = [(name, shape) for name, spec in MODELS.items() for shape in SHAPES[spec.inputs]]
CASE_IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape in CASES]
NAMES = MODELS.names()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Batches of 2 gain nothing from intra-op threads, and on a busy 2-core machine (xdist,
    other jobs) spinning OpenMP threads made these tests ~8x slower; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(name: str, shape: tuple[int, ...], params: dict | None = None, seed: int = 0) -> AuditModel:
    torch.manual_seed(seed)
    return build_model(name, params or {}, shape, N_CLASSES).eval()


def _one_shape(name: str) -> tuple[int, ...]:
    return SHAPES[MODELS.get(name).inputs][-1]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _batch_norm_params(name: str) -> dict:
    """The model's params with BatchNorm where it has a ``norm`` choice (so DP conversion has work to do)."""
    return {"norm": "batch"} if "norm" in MODELS.get(name).params.model_fields else {}


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


# ---- parameter counts against the formula / the papers ----------------------------------------


def test_fcn_param_count_purchase100() -> None:
    # 600-1024-512-256-128-100, weights + biases: 1,317,348 (DESIGN.md's "1.32 M")
    expected = 600 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 100 + 100
    assert expected == 1_317_348
    assert _n_params(build_model("fcn", {}, (600,), 100)) == expected


def test_resnet18_param_count_cifar10() -> None:
    # the CIFAR-stem ResNet-18 of the LiRA/RMIA code bases: 11.17 M
    assert _n_params(build_model("resnet18", {}, (3, 32, 32), 10)) == 11_173_962


def test_resnet18_fractional_width() -> None:
    model = build_model("resnet18", {"width": 0.25}, (3, 32, 32), 10)
    assert model.conv1.out_channels == 16
    assert model.fc.in_features == 128
    assert 0.6e6 < _n_params(model) < 0.8e6


def test_densenet_bc_100_12_param_count_cifar10() -> None:
    n = _n_params(build_model("densenet-bc", {}, (3, 32, 32), 10))
    assert n == 769_162
    assert abs(n - 0.8e6) / 0.8e6 < 0.05  # Huang et al. 2017, Table 2: 0.8 M


def test_cnn_is_small() -> None:
    for shape in [(1, 28, 28), (3, 32, 32)]:
        assert 0.08e6 < _n_params(build_model("cnn", {}, shape, 10)) < 0.6e6


@pytest.mark.parametrize("depth", [99, 101, 4, 7, -2])
def test_densenet_bad_depth_is_a_config_error(depth: int) -> None:
    with pytest.raises(ConfigError, match=r"model\.params\.depth.*\(depth - 4\).*multiple of 6"):
        build_model("densenet-bc", {"depth": depth}, (3, 32, 32), 10)


def test_densenet_small_depth_builds() -> None:
    model = build_model("densenet-bc", {"depth": 10, "growth": 4}, (3, 32, 32), 10)  # 1 layer per block
    assert model(torch.randn(BATCH, 3, 32, 32)).shape == (BATCH, 10)


# ---- DP conversion ----------------------------------------------------------------------------


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


# ---- CNN specifics ----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_cnn_channels_last_matches_contiguous(norm: str) -> None:
    model = _build("cnn", (3, 32, 32), {"norm": norm})
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_cnn_learns_bright_vs_dark() -> None:
    """A sanity check that gradients flow: 8x8 images, dark (label 0) vs bright (label 1)."""
    gen = torch.Generator().manual_seed(0)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 2
        x = 0.3 + 0.4 * y.float().view(n, 1, 1, 1) + 0.1 * torch.randn(n, 1, 8, 8, generator=gen)
        return x, y

    x, y = images(200)
    x_test, y_test = images(200)
    model = _build("cnn", (1, 8, 8)).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):  # >= 0.99 test accuracy over seeds 0-5 and all three norms
        for idx in torch.randperm(200, generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.9
