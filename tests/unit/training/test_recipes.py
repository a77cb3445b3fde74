"""Training recipes: config resolution, the trainer's hooks, and each recipe's effect on fabricated data."""

from __future__ import annotations


import pytest
import torch
import yaml

from miaudit.pipeline.configure import load_config, validate_config
from miaudit.errors import ConfigError
from miaudit.io import fingerprint
from miaudit.training.recipes import RECIPES, AugmentationParams, Augmenter


# --- configuration ------------------------------------------------------------------------------


def test_recipes_set_their_keys_and_round_trip():
    cfg = load_config(None, ["train.recipes=[{name: regdrop, params: {weight_decay: 0.001, rate: 0.25}}, label-smoothing, early-stopping]"])
    assert cfg.train.weight_decay == 0.001 and cfg.model.params["dropout"] == 0.25
    assert cfg.train.label_smoothing == 0.1 and cfg.train.early_stopping.enabled
    assert [r.name for r in cfg.train.recipes] == ["regdrop", "label-smoothing", "early-stopping"]
    again = validate_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg and again.pool_fingerprint() == cfg.pool_fingerprint()


def test_runs_without_recipes_keep_their_pool_fingerprint():
    cfg = load_config(None)
    d = cfg.model_dump(mode="json", include={"seed", "data", "model", "train", "pool"})
    del d["train"]["recipes"]
    del d["data"]["planted"]  # analysis ground truth only, added after fingerprints existed
    # keys added later (issue 16) are left out at their defaults too, so old runs keep their fingerprint
    for key in ("warmup_epochs", "min_lr", "schedule_per"):
        del d["train"][key]
    del d["data"]["splits"]["indices"]
    assert cfg.pool_fingerprint() == fingerprint(d)
    assert load_config(None, ["train.recipes=[l2]"]).pool_fingerprint() != cfg.pool_fingerprint()


def test_dp_sgd_builds_batchnorm_models_with_group_norm():
    cfg = load_config(None, ["model.name=resnet18", "train.recipes=[{name: dp-sgd, params: {noise_multiplier: 1.0}}]"])
    assert cfg.model.params["norm"] == "group"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.recipes=[l3]", "train.recipes.0.name: unknown recipe 'l3'"),
        ("train.recipes=[{name: l2, params: {weight_decay: -1}}]", "train.recipes.0.params.weight_decay"),
        ("train.recipes=[curriculum, {name: dp-sgd, params: {noise_multiplier: 1}}]", "both choose the training sampler"),
        ("train.recipes=[l2, {name: regdrop, params: {weight_decay: 0.1}}]", "sets train.weight_decay=0.1"),
        ("train.recipes=[{name: dp-sgd, params: {noise_multiplier: 1, target_epsilon: 2}}]", "exactly one of"),
    ],
)
def test_bad_recipes_are_one_config_error(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as exc:
        load_config(None, [override])
    assert "\n" not in str(exc.value)


def test_recipes_that_need_a_split_or_an_option_say_so():
    with pytest.raises(ConfigError, match="needs a validation split"):
        load_config(None, ["train.recipes=[early-stopping]", "data.splits.validation=0"])
    with pytest.raises(ConfigError, match="has no dropout option"):
        load_config(None, ["model.name=resnet18", "train.recipes=[dropout]"])
    with pytest.raises(ConfigError, match="population split"):
        load_config(None, ["train.recipes=[curriculum]", "data.splits.population=0"])


def test_every_recipe_builds_with_its_defaults_or_minimal_params():
    minimal = {"dp-sgd": {"noise_multiplier": 1.0}}
    for name in RECIPES:
        recipe = RECIPES.get(name).build(minimal.get(name))
        assert recipe.name == name


# --- augmentation ---------------------------------------------------------------------------------


def test_tabular_bit_flips_happen_at_the_configured_rate_and_are_seeded():
    x = (torch.rand(400, 50, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    p = AugmentationParams(flip_rate=0.1)
    a = Augmenter(p, x, False, torch.Generator().manual_seed(5))
    assert a.binary
    out = a(x)
    rate = float((out != x).float().mean())
    # 20,000 independent flips at p = 0.1: sd = 0.0021, so ±0.01 is ~5 sd
    assert abs(rate - 0.1) < 0.01
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    again = Augmenter(p, x, False, torch.Generator().manual_seed(5))(x)
    assert torch.equal(out, again)


def test_non_binary_tabular_features_get_scaled_gaussian_noise():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 10.0, 0.1, 5.0])
    a = Augmenter(AugmentationParams(noise_std=0.5), x, False, torch.Generator().manual_seed(1))
    assert not a.binary
    noise = a(x) - x
    ratio = noise.std(dim=0) / x.std(dim=0)
    assert torch.allclose(ratio, torch.full((4,), 0.5), atol=0.08)


def test_image_augmentation_is_a_shifted_and_maybe_flipped_copy():
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    a = Augmenter(AugmentationParams(padding=2, hflip=True), x, True, torch.Generator().manual_seed(0))
    out = a(x)
    assert out.shape == x.shape
    # every output pixel is an input pixel of the same image or the zero padding
    for i in range(16):
        assert set(out[i].flatten().tolist()) <= set(x[i].flatten().tolist()) | {0.0}
    assert not torch.equal(out, x)


