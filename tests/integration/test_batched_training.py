"""Batched pool training (training/batched.py) against the one-at-a-time trainer it replaces."""

import numpy as np
import pytest
import torch

from miaudit.pipeline.configure import load_config
from miaudit.data.synthetic import SyntheticPurchaseParams, generate_synthetic_purchase
from miaudit.models import build_model
from miaudit.training import evaluate, train_model
from miaudit.training.batched import train_group


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in both trainers
    yield
    torch.set_num_threads(before)


def task():
    ds = generate_synthetic_purchase(
        SyntheticPurchaseParams(n_records=1300, n_features=40, n_classes=4, n_parents=3, planted_fraction=0.0), seed=3
    )
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)
    return (x[:800], y[:800]), (x[800:1000], y[800:1000]), (x[1000:], y[1000:])


def build(seed, dropout):
    torch.manual_seed(seed)  # as pool.new_model
    return build_model("mlp", {"hidden": [32, 16], "dropout": dropout}, (40,), 4)


def one_at_a_time_and_batched(overrides, dropout=0.0, sizes=(300, 410, 130)):
    (x, y), val, test = task()
    cfg = load_config(None, ["train.batch_size=64", "train.epochs=3", *overrides]).train
    rng = np.random.default_rng(0)
    # members with different numbers of rows, so with different numbers of batches per epoch
    rows = [torch.from_numpy(np.sort(rng.choice(len(y), size=k, replace=False))) for k in sizes]
    seeds = [101, 202, 303]
    plain = []
    for r, s in zip(rows, seeds):
        model = build(s, dropout)
        plain.append((model, train_model(model, x[r], y[r], cfg, seed=s, val=val)))
    models = [build(s, dropout) for s in seeds]
    outcomes = train_group(models, x, y, rows, cfg, seeds=seeds, val=val)
    return plain, list(zip(models, outcomes)), test


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_batched_group_trains_the_same_models_as_one_at_a_time(dropout):
    plain, batched, (xt, yt) = one_at_a_time_and_batched(["train.lr=0.005"], dropout=dropout)
    for (pm, po), (bm, bo) in zip(plain, batched):
        assert po.state.keys() == bo.state.keys()
        for k in po.state:
            torch.testing.assert_close(bo.state[k], po.state[k], rtol=1e-4, atol=1e-5)
        assert evaluate(bm, xt, yt)[1] == pytest.approx(evaluate(pm, xt, yt)[1], abs=0.01)
        assert bo.epochs_run == po.epochs_run == 3
        for hp, hb in zip(po.history, bo.history):
            assert hb["train_acc"] == pytest.approx(hp["train_acc"], abs=1e-9)
            assert hb["train_loss"] == pytest.approx(hp["train_loss"], rel=1e-5)
            assert hb["val_loss"] == pytest.approx(hp["val_loss"], rel=1e-5)


def test_batched_group_follows_sgd_schedule_and_early_stopping_per_member():
    overrides = ["train.optimizer=sgd", "train.lr=0.2", "train.schedule=cosine", "train.epochs=8",
                 "train.label_smoothing=0.1", "train.weight_decay=0.001",
                 "train.early_stopping.enabled=true", "train.early_stopping.patience=1"]
    plain, batched, _ = one_at_a_time_and_batched(overrides)
    for (_, po), (_, bo) in zip(plain, batched):
        assert (bo.epochs_run, bo.best_epoch) == (po.epochs_run, po.best_epoch)
        for k in po.state:
            torch.testing.assert_close(bo.state[k], po.state[k], rtol=1e-4, atol=1e-5)
