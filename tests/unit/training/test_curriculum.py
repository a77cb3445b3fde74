"""Curriculum learning: pacing functions, the epoch's easiest share, per-record weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from miaudit.pipeline.configure import load_config
from miaudit.io import save_npy
from miaudit.training.curriculum import pacing_fraction, progress_at
from recipe_fixtures import context, fabricated


@pytest.mark.parametrize("kind", ["linear", "root", "exponential"])
def test_pacing_functions_start_at_g0_grow_and_saturate(kind):
    values = [pacing_fraction(kind, 0.25, progress_at(e, 10, 0.8)) for e in range(10)]
    assert values[0] == pytest.approx(0.25)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[8] == 1.0 and values[9] == 1.0


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
