"""Recipes in training: each recipe's effect on tiny trained models, the plain trainer, the difficulty proxy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.pipeline.configure import load_config
from miaudit.io import save_npy
from miaudit.models import build_model
from miaudit.training import train_model
from miaudit.training.recipes import build_recipes
from recipe_fixtures import context, fabricated, write_ranking


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


def test_targeted_augmentation_touches_only_flagged_records(tmp_path):
    x, y = fabricated(n=64)
    flagged_ids = [2, 5, 7]
    write_ranking(tmp_path / "vulnerable_records.csv", range(64), [1.0 if i in flagged_ids else 0.0 for i in range(64)],
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
