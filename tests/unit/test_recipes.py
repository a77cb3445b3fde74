"""Training recipes: config resolution, the trainer's hooks, and each recipe's effect on fabricated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from miaudit.pipeline.configure import load_config, validate_config
from miaudit.errors import ConfigError, DataError
from miaudit.io import fingerprint, save_npy
from miaudit.models import build_model
from miaudit.training import train_model
from miaudit.training.curriculum import pacing_fraction, progress_at
from miaudit.training.recipes import RECIPES, AugmentationParams, Augmenter, RecipeContext, build_recipes
from miaudit.training.targeted import TargetedAugmentationParams, flagged_records, read_vulnerability_ranking


def fabricated(n=96, f=12, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.3).float()
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def context(config, x, y, tmp_path=None, rows=None, ids=None, population=None):
    n = len(y)
    return RecipeContext(
        config=config, rows=np.arange(n) if rows is None else rows, audit_x=x, audit_y=y,
        audit_ids=np.arange(n) if ids is None else ids, n_classes=int(y.max()) + 1, population=population,
        cache_dir=tmp_path,
    )


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


# --- the trainer with and without recipes -------------------------------------------------------


def _old_loop(model, x, y, cfg, seed):
    """The trainer's loop before recipes existed (the reference for 'no recipes = unchanged')."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay,
                           fused=True)  # as make_optimizer: the fused kernel where torch has one
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return model.state_dict()


def test_without_recipes_the_trainer_is_bit_identical_to_the_plain_loop():
    x, y = fabricated()
    cfg = load_config(None, ["train.epochs=3", "train.batch_size=16"]).train
    torch.manual_seed(3)
    a = build_model("mlp", {"hidden": [16], "dropout": 0.2}, (12,), 3)
    b = build_model("mlp", {"hidden": [16], "dropout": 0.2}, (12,), 3)
    b.load_state_dict(a.state_dict())
    got = train_model(a, x, y, cfg, seed=11).state
    want = _old_loop(b, x, y, cfg, seed=11)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_label_smoothing_recipe_changes_the_loss_as_the_formula_says():
    """One batch, a negligible step: the logged loss is the smoothed loss at the initial weights."""
    x, y = fabricated(n=40)
    eps = 0.2
    cfg = load_config(None, ["train.epochs=1", "train.batch_size=64", "train.optimizer=sgd", "train.lr=1e-12",
                             f"train.recipes=[{{name: label-smoothing, params: {{epsilon: {eps}}}}}]"])
    assert cfg.train.label_smoothing == eps
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [8]}, (12,), 3)
    with torch.no_grad():
        model.fc.weight.mul_(30)  # confident outputs, where smoothing matters
        logp = torch.log_softmax(model(x).double(), dim=1)
    nll = -logp[torch.arange(len(y)), y]
    uniform = -logp.mean(dim=1)
    expected = float(((1 - eps) * nll + eps * uniform).mean())
    plain = float(nll.mean())
    out = train_model(model, x, y, cfg.train, seed=0, recipes=build_recipes(cfg.train.recipes))
    assert out.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - plain) > 0.05  # the two differ, so the check has teeth


def test_l2_recipe_adds_weight_decay_to_the_update():
    """SGD, one batch, one step: w1(l2) − w1(plain) = −lr · λ · w0 exactly (same gradient at w0)."""
    x, y = fabricated(n=32)
    lam, lr = 0.05, 0.1
    base = ["train.epochs=1", "train.batch_size=64", "train.optimizer=sgd", f"train.lr={lr}"]
    plain = load_config(None, base).train
    l2 = load_config(None, [*base, f"train.recipes=[{{name: l2, params: {{weight_decay: {lam}}}}}]"]).train
    assert l2.weight_decay == lam
    torch.manual_seed(0)
    m0 = build_model("mlp", {"hidden": [8]}, (12,), 3)
    w0 = {k: v.clone() for k, v in m0.state_dict().items()}
    states = []
    for cfg in (plain, l2):
        m = build_model("mlp", {"hidden": [8]}, (12,), 3)
        m.load_state_dict(w0)
        states.append(train_model(m, x, y, cfg, seed=0).state)
    for k in w0:
        torch.testing.assert_close(states[1][k] - states[0][k], -lr * lam * w0[k], atol=1e-6, rtol=0)


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


def test_augmentation_recipe_changes_training_but_not_the_data_order():
    x, y = fabricated()
    cfg = load_config(None, ["train.epochs=2", "train.batch_size=16", "train.recipes=[augmentation]"]).train
    torch.manual_seed(0)
    m = build_model("mlp", {"hidden": [8]}, (12,), 3)
    w0 = {k: v.clone() for k, v in m.state_dict().items()}
    aug = train_model(m, x, y, cfg, seed=1, recipes=build_recipes(cfg.recipes)).state
    m.load_state_dict(w0)
    plain = train_model(m, x, y, cfg, seed=1).state
    assert any(not torch.equal(aug[k], plain[k]) for k in aug)


# --- targeted variants ------------------------------------------------------------------------------


def _write_ranking(path, ids, vulnerability, vulnerable):
    lines = ["record_id,label,vulnerable,vulnerability"]
    lines += [f"{i},0,{int(v)},{s}" for i, s, v in zip(ids, vulnerability, vulnerable)]
    path.write_text("\n".join(lines) + "\n")


def test_ranking_is_read_by_record_id_and_flags_the_top_fraction(tmp_path):
    ids = np.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    # the file lists records in another order and one record that is not in this audit pool
    _write_ranking(tmp_path / "vulnerable_records.csv", [13, 99, 10, 17], [0.9, 1.0, 0.5, 0.7], [1, 1, 0, 0])
    score, flags = read_vulnerability_ranking(tmp_path, ids)
    assert np.isnan(score[[1, 2, 4, 5, 6, 8, 9]]).all()
    assert score[3] == 0.9 and score[0] == 0.5 and score[7] == 0.7
    assert flags.tolist() == [False, False, False, True] + [False] * 6
    cfg = load_config(None)
    ctx = context(cfg, torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), ids=ids)
    top = flagged_records(TargetedAugmentationParams(ranking_from=tmp_path, fraction=0.2), ctx)
    assert np.flatnonzero(top).tolist() == [3, 7]
    from_flags = flagged_records(TargetedAugmentationParams(ranking_from=tmp_path, fraction=None), ctx)
    assert np.flatnonzero(from_flags).tolist() == [3]
    with pytest.raises(DataError, match="vulnerable_records.csv"):
        read_vulnerability_ranking(tmp_path / "nowhere", ids)


def test_targeted_augmentation_touches_only_flagged_records(tmp_path):
    x, y = fabricated(n=64)
    flagged_ids = [2, 5, 7]
    _write_ranking(tmp_path / "vulnerable_records.csv", range(64), [1.0 if i in flagged_ids else 0.0 for i in range(64)],
                   [0] * 64)
    cfg = load_config(None, ["train.epochs=1", "train.batch_size=64",
                             f"train.recipes=[{{name: targeted-augmentation, params: {{ranking_from: {tmp_path}, "
                             "fraction: 0.05, flip_rate: 0.5}}]"])
    seen = {}

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build_model("mlp", {"hidden": [4]}, (12,), 3)

        def forward(self, xb):
            seen["x"] = xb.clone()
            return self.inner(xb)

    rows = np.arange(64)
    recipes = build_recipes(cfg.train.recipes)
    out = train_model(Spy(), x, y, cfg.train, seed=0, recipes=recipes, context=context(cfg, x, y, rows=rows))
    assert out.extras["targeted"]["n_flagged"] == 3
    # the single batch holds every record once (in a shuffled order): compare as sets of rows
    changed = {tuple(r.tolist()) for r in seen["x"]} - {tuple(r.tolist()) for r in x}
    assert 1 <= len(changed) <= 3
    unchanged = {tuple(r.tolist()) for r in x[[i for i in range(64) if i not in flagged_ids]]}
    assert unchanged <= {tuple(r.tolist()) for r in seen["x"]}


# --- curriculum ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "root", "exponential"])
def test_pacing_functions_start_at_g0_grow_and_saturate(kind):
    values = [pacing_fraction(kind, 0.25, progress_at(e, 10, 0.8)) for e in range(10)]
    assert values[0] == pytest.approx(0.25)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[8] == 1.0 and values[9] == 1.0


def test_curriculum_paces_in_the_easiest_records_first(tmp_path):
    x, y = fabricated(n=100)
    difficulty = np.linspace(0, 1, 100)[::-1].copy()  # record 99 is the easiest, record 0 the hardest
    save_npy(tmp_path / "difficulty.npy", difficulty)
    cfg = load_config(None, ["train.epochs=5", "train.batch_size=10",
                             "train.recipes=[{name: curriculum, params: {start: 0.2, saturate: 1.0}}]"])
    batches = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build_model("mlp", {"hidden": [4]}, (12,), 3)

        def forward(self, xb):
            batches.append(len(xb))
            return self.inner(xb)

    out = train_model(Spy(), x, y, cfg.train, seed=0, recipes=build_recipes(cfg.train.recipes),
                      context=context(cfg, x, y, tmp_path=tmp_path))
    shares = out.extras["curriculum"]["shares"]
    assert shares == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    per_epoch = [math.ceil(s * 100) for s in shares]
    assert sum(batches) == sum(per_epoch)


def test_curriculum_epoch_uses_only_the_easiest_share(tmp_path):
    from miaudit.training.curriculum import Curriculum, CurriculumParams
    from miaudit.training.trainer import TrainRun

    x, y = fabricated(n=50)
    save_npy(tmp_path / "difficulty.npy", np.arange(50, dtype=np.float64))  # record 0 easiest
    cfg = load_config(None, ["train.epochs=4", "train.batch_size=8"])
    run = TrainRun(model=nn.Linear(1, 1), optimizer=None, cfg=cfg.train, x=x, y=y, seed=0,
                   generator=torch.Generator().manual_seed(0), sampler=None, criterion=None, stack=None,
                   context=context(cfg, x, y, tmp_path=tmp_path))
    Curriculum(CurriculumParams(start=0.3, saturate=1.0)).start(run)
    first = torch.cat(list(run.sampler(0)))
    assert sorted(first.tolist()) == list(range(15))
    assert sorted(torch.cat(list(run.sampler(1))).tolist()) == list(range(math.ceil(50 * (0.3 + 0.7 / 3))))
    assert sorted(torch.cat(list(run.sampler(3))).tolist()) == list(range(50))


def test_curriculum_weights_have_mean_one_and_favour_easy_records(tmp_path):
    from miaudit.training.curriculum import Curriculum, CurriculumParams
    from miaudit.training.trainer import TrainRun

    x, y = fabricated(n=40)
    save_npy(tmp_path / "difficulty.npy", np.arange(40, dtype=np.float64))
    cfg = load_config(None, ["train.epochs=4"])
    run = TrainRun(model=nn.Linear(1, 1), optimizer=None, cfg=cfg.train, x=x, y=y, seed=0,
                   generator=torch.Generator().manual_seed(0), sampler=None, criterion=None, stack=None,
                   context=context(cfg, x, y, tmp_path=tmp_path))
    Curriculum(CurriculumParams(mode="weight", start=0.5, saturate=1.0, hard_weight=0.2)).start(run)
    w = run.weights(0, torch.arange(40))
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[0]) > float(w[39])
    assert torch.allclose(run.weights(3, torch.arange(40)), torch.ones(40))  # the last epoch: all paced in


def test_difficulty_is_the_proxy_loss_and_is_cached(tmp_path, monkeypatch):
    from miaudit.training import curriculum

    x, y = fabricated(n=60)
    px, py = fabricated(n=60, seed=1)
    cfg = load_config(None, ["model.name=mlp", "model.params.hidden=[8]", "train.epochs=2",
                             "data.params.n_features=12"])
    ctx = context(cfg, x, y, tmp_path=tmp_path, population=(px, py))
    d = curriculum.difficulty_scores(ctx)
    assert d.shape == (60,) and np.isfinite(d).all() and (d > 0).all()
    assert (tmp_path / "difficulty.npy").is_file()
    monkeypatch.setattr(curriculum, "proxy_loss", lambda c: pytest.fail("recomputed"))
    np.testing.assert_array_equal(curriculum.difficulty_scores(ctx), d)
