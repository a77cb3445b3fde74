"""The trainer's learning-rate schedules: warm-up, a floor for cosine/step, stepping per batch (issue 16).
The trainer on real tasks (it learns, is seeded, stops early) is in tests/integration/test_training.py."""

from __future__ import annotations

import math

import pytest
import torch

from miaudit.config import TrainConfig
from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError
from miaudit.training.trainer import lr_factor, make_scheduler


def _lrs(cfg: TrainConfig, steps_per_epoch: int = 1) -> list[float]:
    """The learning rate in force for each epoch (per-epoch) or batch (per-batch) of a run."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched is not None:
                sched.batch_step()
        if sched is not None:
            sched.step()
    return out


def test_cosine_without_options_is_torchs_and_matches_the_closed_form():
    cfg = TrainConfig(schedule="cosine", epochs=10, lr=0.1)
    got = _lrs(cfg)
    assert got == pytest.approx([0.1 * lr_factor(t, cfg) for t in range(10)])
    assert got[5] == pytest.approx(0.05) and got[0] == 0.1


def test_warmup_then_cosine_to_the_floor():
    cfg = TrainConfig(schedule="cosine", epochs=10, lr=0.1, warmup_epochs=2, min_lr=0.01)
    got = _lrs(cfg)
    assert got[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])  # rises linearly, full lr when warm-up ends
    assert all(a >= b for a, b in zip(got[2:], got[3:]))  # then only falls
    assert min(got[2:]) > 0.01 and lr_factor(10, cfg) * 0.1 == pytest.approx(0.01)  # ends at the floor
    # half-way through the 8 cosine epochs: the midpoint of lr and the floor
    assert got[6] == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_step_schedule_never_goes_below_the_floor():
    cfg = TrainConfig(schedule="step", epochs=9, lr=1.0, step_size=3, gamma=0.1, min_lr=0.05)
    assert _lrs(cfg) == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05])


def test_per_batch_schedule_moves_inside_the_epoch():
    cfg = TrainConfig(schedule="cosine", epochs=2, lr=1.0, schedule_per="batch")
    got = _lrs(cfg, steps_per_epoch=4)  # 8 steps in all
    assert len(set(got[:4])) == 4  # every batch a new rate
    assert got[4] == pytest.approx(0.5)  # half-way: cos(pi/2)
    per_epoch = _lrs(TrainConfig(schedule="cosine", epochs=2, lr=1.0), steps_per_epoch=4)
    assert len(set(per_epoch[:4])) == 1


def test_schedule_options_are_checked_and_keep_old_fingerprints():
    with pytest.raises(ConfigError, match="train.min_lr: must not exceed lr"):
        load_config(None, ["train.min_lr=1"])
    with pytest.raises(ConfigError, match="train.warmup_epochs: must be below epochs"):
        load_config(None, ["train.epochs=3", "train.warmup_epochs=3"])
    base = load_config(None, [])
    assert load_config(None, ["train.schedule_per=epoch"]).pool_fingerprint() == base.pool_fingerprint()
    assert load_config(None, ["train.min_lr=0.0001"]).pool_fingerprint() != base.pool_fingerprint()
