"""The trainer on small real tasks: it learns, is seeded, stops early, and steps a per-batch schedule."""

import numpy as np
import pytest
import torch

from miaudit.config import TrainConfig
from miaudit.pipeline.configure import load_config
from miaudit.data.synthetic import SyntheticPurchaseParams, generate_synthetic_purchase
from miaudit.models import build_model
from miaudit.training import evaluate, train_model


def small_task():
    ds = generate_synthetic_purchase(
        SyntheticPurchaseParams(n_records=1500, n_features=80, n_classes=5, n_parents=5, planted_fraction=0.0), seed=0
    )
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)
    return (x[:1000], y[:1000]), (x[1000:], y[1000:])


def test_fcn_learns_a_small_synthetic_set_above_chance():
    (xtr, ytr), (xte, yte) = small_task()
    cfg = load_config(None, ["train.epochs=5"]).train
    torch.manual_seed(0)
    model = build_model("fcn", {"hidden": [128, 64]}, (80,), 5)
    out = train_model(model, xtr, ytr, cfg, seed=0)
    _, test_acc = evaluate(model, xte, yte)
    assert test_acc > 0.6  # chance is 0.2
    assert out.history[-1]["train_acc"] > out.history[0]["train_acc"]
    assert out.epochs_run == 5 and len(out.history) == 5


def test_same_seed_same_model():
    (xtr, ytr), _ = small_task()
    cfg = load_config(None, ["train.epochs=2"]).train
    states = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("mlp", {"hidden": [32], "dropout": 0.2}, (80,), 5)
        states.append(train_model(model, xtr, ytr, cfg, seed=7).state)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])


def test_early_stopping_watches_validation_and_restores_best():
    (xtr, ytr), (xva, yva) = small_task()
    # validation labels shuffled: validation loss only gets worse, so training stops early
    yva = yva[torch.randperm(len(yva), generator=torch.Generator().manual_seed(0))]
    cfg = load_config(None, ["train.epochs=30", "train.lr=0.01", "train.early_stopping.enabled=true",
                             "train.early_stopping.patience=2"]).train
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [64]}, (80,), 5)
    out = train_model(model, xtr, ytr, cfg, seed=0, val=(xva, yva))
    assert out.epochs_run < 30
    assert out.best_epoch == out.epochs_run - 2
    best = min(h["val_loss"] for h in out.history)
    assert evaluate(model, xva, yva)[0] == np.float64(best) or abs(evaluate(model, xva, yva)[0] - best) < 1e-5


def test_trainer_uses_the_per_batch_schedule():
    x, y = torch.randn(64, 5), torch.randint(0, 2, (64,))
    model = torch.nn.Linear(5, 2)
    cfg = TrainConfig(schedule="constant", warmup_epochs=1, epochs=2, batch_size=16, lr=0.1, schedule_per="batch",
                      optimizer="sgd")
    seen = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        train_model(model, x, y, cfg, seed=0)
    finally:
        torch.optim.SGD.step = orig
    assert seen[:4] == pytest.approx([0.1 / 5, 0.2 / 5, 0.3 / 5, 0.4 / 5]) and seen[4:] == pytest.approx([0.1] * 4)
