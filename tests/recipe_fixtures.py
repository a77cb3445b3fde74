"""Fabricated data for the recipe tests (unit and integration): tiny binary records, a recipe
context around them, and a vulnerability ranking file as `miaudit run` writes it."""

from __future__ import annotations

import numpy as np
import torch

from miaudit.training.recipes import RecipeContext


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


def write_ranking(path, ids, vulnerability, vulnerable):
    lines = ["record_id,label,vulnerable,vulnerability"]
    lines += [f"{i},0,{int(v)},{s}" for i, s, v in zip(ids, vulnerability, vulnerable)]
    path.write_text("\n".join(lines) + "\n")
