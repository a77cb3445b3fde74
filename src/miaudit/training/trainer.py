"""One trainer for every model and recipe: SGD/Adam, LR schedule, label smoothing, weight decay,
early stopping on the validation split (never on audited records).

Training data stays as tensors in memory; every random choice (initialisation, data order,
dropout) derives from the ``seed`` argument, so the same seed gives the same model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from miaudit.config import TrainConfig

EpochCallback = Callable[[int, dict], None]


@dataclass
class TrainOutcome:
    """What training produced: final (or best) weights and a per-epoch history."""

    state: dict[str, torch.Tensor]
    epochs_run: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    extras: dict = field(default_factory=dict)  # e.g. {"epsilon": 2.4, "delta": 1e-5} for DP-SGD


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        out = model(x[i : i + batch_size])
        loss_sum += float(nn.functional.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    n = max(1, len(y))
    return loss_sum / n, correct / n


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    seed: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainOutcome:
    """Train ``model`` in place on (x, y) and return its weights and history.

    Parameters
    ----------
    x : (N, ...) float32 tensor on the model's device
    y : (N,) int64 tensor
    val : validation split, used only for early stopping and the history
    """
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    es = cfg.early_stopping
    use_es = es.enabled and val is not None and len(val[1]) > 0
    best_value, best_epoch, best_state, stale = np.inf, 0, None, 0
    history: list[dict] = []
    n = len(y)
    epochs_run = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(x.device)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((out.detach().argmax(1) == yb).sum())
        if sched is not None:
            sched.step()
        epochs_run = epoch + 1
        record = {"epoch": epochs_run, "train_loss": loss_sum / n, "train_acc": correct / n}
        if val is not None and len(val[1]) > 0:
            record["val_loss"], record["val_acc"] = evaluate(model, *val)
        history.append(record)
        if on_epoch is not None:
            on_epoch(epochs_run, record)
        if use_es:
            value = record["val_loss"] if es.metric == "val_loss" else -record["val_acc"]
            if value < best_value - es.min_delta:
                best_value, best_epoch, stale = value, epochs_run, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= es.patience:
                    break
    if use_es and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epochs_run
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainOutcome(state=state, epochs_run=epochs_run, best_epoch=best_epoch, history=history,
                        wall_s=time.perf_counter() - start)
