"""One trainer for every model and recipe: SGD/Adam, LR schedule, label smoothing, weight decay,
early stopping on the validation split (never on audited records).

Training data stays as tensors in memory; every random choice (initialisation, data order,
dropout) derives from the ``seed`` argument, so the same seed gives the same model.

Defences plug in as *recipes* (``miaudit.training.recipes``). Before the first epoch each recipe's
``start`` may replace a part of the :class:`TrainRun` — the batch ``sampler`` (curriculum pacing,
DP-SGD's Poisson sampling), the ``criterion`` (DP-SGD's per-sample loss), the ``optimizer``
(DP-SGD), per-record loss ``weights`` (curriculum weighting) — or append input ``transforms``
(augmentation). With no recipes the loop below is the plain loop: shuffled fixed-size batches,
mean cross-entropy, one optimizer step per batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from miaudit.config import TrainConfig

if TYPE_CHECKING:
    from miaudit.training.recipes import Recipe, RecipeContext

EpochCallback = Callable[[int, dict], None]
#: epoch -> index batches (1-D int64 tensors into the training rows, on the data's device)
Sampler = Callable[[int], Iterable[torch.Tensor]]
#: (logits, labels, per-sample weights or None) -> scalar loss (anything with .backward())
Criterion = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], Any]
#: (inputs, labels, batch indices) -> inputs
Transform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: (epoch, batch indices) -> per-sample loss weights
Weights = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass
class TrainOutcome:
    """What training produced: final (or best) weights and a per-epoch history."""

    state: dict[str, torch.Tensor]
    epochs_run: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    extras: dict = field(default_factory=dict)  # e.g. {"dp": {"epsilon": 2.4, "delta": 1e-4, ...}} for DP-SGD


@dataclass
class TrainRun:
    """The parts of one training run; a recipe's ``start`` may replace or extend them.

    ``stack`` closes when training ends (also on errors): recipes register clean-ups and
    warning filters there.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    x: torch.Tensor
    y: torch.Tensor
    seed: int
    generator: torch.Generator  # the data-order stream
    sampler: Sampler
    criterion: Criterion
    stack: contextlib.ExitStack
    context: RecipeContext | None = None
    transforms: list[Transform] = field(default_factory=list)
    weights: Weights | None = None
    #: called instead of a step when a (Poisson) batch is empty; None = skip the batch
    on_empty_batch: Callable[[], None] | None = None
    extras: dict = field(default_factory=dict)  # returned in TrainOutcome.extras (the sidecar)
    scratch: dict = field(default_factory=dict)  # recipes' private state between start and finish

    @property
    def n(self) -> int:
        return len(self.y)

    def child_seed(self, tag: int) -> int:
        """An independent seed for one recipe's stream, derived from the run seed and ``tag``.

        Recipes draw their randomness (augmentation noise, Poisson sampling, DP noise) from their
        own streams, so adding one recipe does not shift the data order of the others.
        """
        return int(np.random.SeedSequence([self.seed, 0x7EC1_9E, tag]).generate_state(1)[0])

    def child_generator(self, tag: int) -> torch.Generator:
        """A CPU ``torch.Generator`` seeded with ``child_seed(tag)``."""
        return torch.Generator().manual_seed(self.child_seed(tag))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters, fused into one kernel where torch has one.

    The fused step reads and writes every parameter once instead of once per elementwise op;
    on 2 CPU cores it cut the optimizer step of the study's FCN from ~23 ms to ~3 ms per batch
    (``benchmarks/bench_training.py``). Same update rule; float rounding may differ in the last bit.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fused = _fused_ok(params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)


def _fused_ok(params: list[torch.Tensor]) -> bool | None:
    """True where torch has fused Adam/SGD kernels (float tensors on CPU or CUDA), else None (its default)."""
    ok = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return True if ok and len({p.device for p in params}) == 1 else None


def lr_factor(t: int, cfg: TrainConfig, steps_per_epoch: int = 1) -> float:
    """The learning rate ÷ ``cfg.lr`` after ``t`` schedule steps (epochs, or batches with ``schedule_per: batch``).

    A linear warm-up over ``warmup_epochs`` (rising to ``lr`` by its last step), then the
    schedule over the remaining steps: constant, cosine from ``lr`` to ``min_lr``, or ×``gamma``
    every ``step_size`` epochs, never below ``min_lr``.
    """
    per = steps_per_epoch if cfg.schedule_per == "batch" else 1
    warm, total = round(cfg.warmup_epochs * per), cfg.epochs * per
    if t < warm:
        return (t + 1) / (warm + 1)
    s, span, floor = t - warm, max(1, total - warm), cfg.min_lr / cfg.lr
    if cfg.schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, span) / span))
    if cfg.schedule == "step":
        return max(floor, cfg.gamma ** (s // (cfg.step_size * per)))
    return 1.0


class Schedule:
    """The learning-rate schedule, stepped after every epoch (``step``) or every batch (``batch_step``)."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler, per_batch: bool) -> None:
        self.scheduler, self.per_batch = scheduler, per_batch

    def step(self) -> None:
        """An epoch ended."""
        if not self.per_batch:
            self.scheduler.step()

    def batch_step(self) -> None:
        """An optimizer step was taken."""
        if self.per_batch:
            self.scheduler.step()


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int = 1) -> Schedule | None:
    """The configured schedule; None for a constant rate without warm-up.

    Without warm-up, floor or per-batch stepping this is torch's CosineAnnealingLR / StepLR
    (as before these options existed); otherwise a LambdaLR of :func:`lr_factor`.
    """
    per_batch = cfg.schedule_per == "batch"
    if cfg.schedule == "constant" and not cfg.warmup_epochs:
        return None
    if not (cfg.warmup_epochs or cfg.min_lr or per_batch):
        if cfg.schedule == "cosine":
            return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs), False)
        return Schedule(torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False)
    return Schedule(torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, cfg, steps_per_epoch)), per_batch)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> Sampler:
    """The default sampler: a fresh permutation of the n rows each epoch, cut into batches."""

    def sample(epoch: int) -> Iterable[torch.Tensor]:
        return torch.randperm(n, generator=generator).to(device).split(batch_size)

    return sample


def cross_entropy_criterion(label_smoothing: float) -> Criterion:
    """Mean (optionally weighted) cross-entropy with label smoothing ε: the default criterion.

    With weights w the loss is mean_i(w_i · ℓ_i); without, PyTorch's mean cross-entropy.
    """
    mean_loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    per_sample = nn.CrossEntropyLoss(label_smoothing=label_smoothing, reduction="none")

    def criterion(out: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        if w is None:
            return mean_loss(out, y)
        return (per_sample(out, y) * w).mean()

    return criterion


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


@torch.no_grad()
def per_record_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Cross-entropy of every record (N,) float64, in eval mode."""
    was_training = model.training
    model.eval()
    out = [
        nn.functional.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size], reduction="none").double().cpu()
        for i in range(0, len(y), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def divergence(outcome: TrainOutcome) -> str | None:
    """Why ``outcome`` is unusable — "diverged at epoch e (loss nan)" — or None when its loss and weights are finite."""
    for record in outcome.history:
        loss = record.get("train_loss")
        if loss is None or not math.isfinite(loss):
            return f"diverged at epoch {record.get('epoch')} (loss {loss})"
    for name, value in outcome.state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            return f"diverged: its weights ({name}) hold NaN or infinite values"
    return None


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    seed: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: EpochCallback | None = None,
    recipes: Sequence[Recipe] = (),
    context: RecipeContext | None = None,
) -> TrainOutcome:
    """Train ``model`` in place on (x, y) and return its weights and history.

    Parameters
    ----------
    x : (N, ...) float32 tensor on the model's device
    y : (N,) int64 tensor
    val : validation split, used only for early stopping and the history
    recipes : training-time defences, applied in order (``miaudit.training.recipes.build_recipes``)
    context : what recipes may need beyond (x, y): which audit records these are, the population
        split, a cache directory (``RecipeContext``)
    """
    start = time.perf_counter()
    if x.dim() == 4 and any(isinstance(mod, nn.Conv2d) for mod in model.modules()):
        # channels-last convolutions: ~1.2x (GroupNorm) to ~1.35x (BatchNorm) on the small CNN, 2 cores
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    es = cfg.early_stopping
    use_es = es.enabled and val is not None and len(val[1]) > 0
    best_value, best_epoch, best_state, stale = np.inf, 0, None, 0
    history: list[dict] = []
    epochs_run = 0
    with contextlib.ExitStack() as stack:
        run = TrainRun(
            model=model, optimizer=make_optimizer(model, cfg), cfg=cfg, x=x, y=y, seed=seed, generator=gen,
            sampler=shuffled_batches(len(y), cfg.batch_size, gen, x.device),
            criterion=cross_entropy_criterion(cfg.label_smoothing), stack=stack, context=context,
        )
        for recipe in recipes:
            recipe.start(run)
        opt, sched = run.optimizer, make_scheduler(run.optimizer, cfg, steps_per_epoch=-(-len(y) // cfg.batch_size))
        for epoch in range(cfg.epochs):
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for idx in run.sampler(epoch):
                if len(idx) == 0:
                    if run.on_empty_batch is not None:
                        run.on_empty_batch()
                    continue
                xb, yb = x[idx], y[idx]
                for transform in run.transforms:
                    xb = transform(xb, yb, idx)
                w = run.weights(epoch, idx) if run.weights is not None else None
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = run.criterion(out, yb, w)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.batch_step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((out.detach().argmax(1) == yb).sum())
                seen += len(idx)
            if sched is not None:
                sched.step()
            epochs_run = epoch + 1
            seen = max(seen, 1)
            record = {"epoch": epochs_run, "train_loss": loss_sum / seen, "train_acc": correct / seen}
            if val is not None and len(val[1]) > 0:
                record["val_loss"], record["val_acc"] = evaluate(model, *val)
            history.append(record)
            if on_epoch is not None:
                on_epoch(epochs_run, record)
            if not math.isfinite(record["train_loss"]):
                break  # diverged: more epochs cannot recover; the caller reports it (``divergence``)
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
        for recipe in recipes:
            run.extras.update(recipe.finish(run))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainOutcome(state=state, epochs_run=epochs_run, best_epoch=best_epoch, history=history,
                        wall_s=time.perf_counter() - start, extras=run.extras)
