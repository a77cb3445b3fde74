"""Several small fully connected models trained at once, with batched matmuls.

On a few CPU cores a model under ~200k parameters does not keep the cores busy: per batch,
Python and kernel-launch overhead and the optimizer's passes over the weights cost about as
much as the matmuls. Stacking the layers of G pool members into (G, out, in) tensors turns G
small GEMMs into one batched GEMM (``torch.baddbmm``) and G optimizer steps into one fused
call; on 2 cores DESIGN.md measured about 2x for such models, and nothing for the study's
1.3 M-parameter FCN (``benchmarks/bench_pool.py`` measures both).

Exactness
---------
Every member follows the one-at-a-time recipe of :func:`miaudit.training.train_model`:

- its own initialisation (the member models are built by the caller, as for the plain loop);
- its own data order: a ``torch.Generator`` seeded with the member's seed draws one
  ``randperm`` of its training rows per epoch, cut into the same batches;
- its own loss: mean cross-entropy (with label smoothing) over its own batch;
- its own dropout masks, drawn from a generator seeded like the plain loop's global stream;
- one optimizer (``make_optimizer``) whose state is per parameter, so per member; a member
  without a batch in a step (its epoch has fewer batches, or it stopped early) gets no
  gradient (``grad = None``), which the optimizer skips, so its state does not move;
- the same LR schedule, early stopping on the validation split and per-epoch history.

Only the floating-point summation order of the matmuls differs (one batched GEMM instead of G
single ones), so weights agree with the one-at-a-time trainer to float tolerance, not bit for
bit, and test accuracy agrees within noise (``tests/integration/test_batched_training.py``).

Applies to models made only of ``Flatten``, ``Linear``, elementwise activations and
``Dropout`` (``fcn``, ``mlp``) trained without recipes; :func:`batched_unsupported` says why
not otherwise, and the pool then trains members one at a time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from miaudit.config import TrainConfig
from miaudit.training.trainer import TrainOutcome, evaluate, make_optimizer, make_scheduler

#: (epoch, one history record per member) after every epoch
GroupEpochCallback = Callable[[int, list[dict]], None]

#: elementwise modules applied as they are to (G, B, H) activations
_ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.GELU, nn.Sigmoid, nn.Identity, nn.LeakyReLU, nn.ELU, nn.SiLU)


def _layers(model: nn.Module) -> list[nn.Module] | None:
    """The model's modules in forward order if it is a plain MLP (``FCN``: ``fc(body(x))``), else None."""
    from miaudit.models.fcn import FCN

    if type(model) is not FCN:
        return None
    return [*model.body, model.fc]


def batched_unsupported(model: nn.Module, recipes: Sequence[object] = ()) -> str | None:
    """Why ``model`` cannot be trained by :func:`train_group`, or None when it can.

    >>> from miaudit.models import build_model
    >>> batched_unsupported(build_model("mlp", {}, (10,), 3)) is None
    True
    >>> batched_unsupported(build_model("cnn", {}, (1, 8, 8), 3))
    'cnn: not a plain MLP (Flatten/Linear/activation/Dropout)'
    """
    if recipes:
        return "training recipes change the per-sample loop"
    layers = _layers(model)
    name = type(model).__name__.lower()
    if layers is None:
        return f"{name}: not a plain MLP (Flatten/Linear/activation/Dropout)"
    for layer in layers:
        if not isinstance(layer, (nn.Flatten, nn.Linear, nn.Dropout, *_ELEMENTWISE)):
            return f"{name}: layer {type(layer).__name__} has no batched form"
    return None


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _GroupLinear(torch.autograd.Function):
    """``h @ w^T + b`` for G stacked layers, with a backward that writes every gradient in its leaf's layout.

    Autograd's own backward of ``baddbmm(b, h, w.transpose(1, 2))`` computes the weight gradient
    as (G, in, out) and then copies it into the (G, out, in) layout of ``w`` (a transposing copy
    that cost as much as the GEMM here); computing ``grad^T @ h`` directly avoids it.
    """

    @staticmethod
    def forward(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        wt = w.transpose(1, 2)
        return torch.baddbmm(b.unsqueeze(1), h, wt) if b is not None else torch.bmm(h, wt)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        h, w, b = inputs
        ctx.save_for_backward(h, w)
        ctx.has_bias = b is not None

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        h, w = ctx.saved_tensors
        grad_h = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None  # (G, B, in)
        grad_w = torch.bmm(grad.transpose(1, 2), h) if ctx.needs_input_grad[1] else None  # (G, out, in)
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (G, out)
        return grad_h, grad_w, grad_b


class _Stack:
    """The members' Linear layers as stacked (G, out, in) / (G, out) buffers.

    The members' own parameters become views of these buffers (``param.data = buf[g]``), so
    the optimizer, which holds the members' parameters, updates the buffers in place and the
    member models stay usable (and saveable) as they are.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        per_model = [_layers(m) for m in models]
        self.template = per_model[0]
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor | None] = []
        self.params: list[list[nn.Parameter]] = []  # per stacked buffer: the G member parameters
        for i, layer in enumerate(self.template):
            if not isinstance(layer, nn.Linear):
                continue
            lin = [layers[i] for layers in per_model]
            w = torch.stack([m.weight.detach() for m in lin])
            for g, m in enumerate(lin):
                m.weight.data = w[g]
            self.weights.append(w)
            self.params.append([m.weight for m in lin])
            if layer.bias is not None:
                b = torch.stack([m.bias.detach() for m in lin])
                for g, m in enumerate(lin):
                    m.bias.data = b[g]
                self.biases.append(b)
                self.params.append([m.bias for m in lin])
            else:
                self.biases.append(None)

    def forward(self, x: torch.Tensor, dropout: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
                leaves: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(G, B, ...) inputs -> (G, B, C) logits; ``leaves`` are the grad-tracking aliases of the buffers."""
        h = x.flatten(2)
        k = 0
        it = iter(leaves) if leaves is not None else None
        for layer in self.template:
            if isinstance(layer, nn.Flatten):
                continue
            if isinstance(layer, nn.Linear):
                w = next(it) if it is not None else self.weights[k]
                b = (next(it) if it is not None else self.biases[k]) if self.biases[k] is not None else None
                k += 1
                h = _GroupLinear.apply(h, w, b)
            elif isinstance(layer, nn.Dropout):
                if dropout is not None and layer.p > 0:
                    h = dropout(h, layer.p)
            else:
                h = layer(h)
        return h

    def leaves(self) -> list[torch.Tensor]:
        """Fresh grad-tracking aliases of every buffer, in ``params`` order (no copy)."""
        out = []
        for w, b in zip(self.weights, self.biases):
            out.append(w.detach().requires_grad_(True))
            if b is not None:
                out.append(b.detach().requires_grad_(True))
        return out


def train_group(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    rows: Sequence[torch.Tensor],
    cfg: TrainConfig,
    *,
    seeds: Sequence[int],
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: GroupEpochCallback | None = None,
) -> list[TrainOutcome]:
    """Train G same-architecture MLPs at once, each on its own rows of (x, y); as ``train_model`` each.

    Parameters
    ----------
    models : G models of one architecture (``batched_unsupported`` is None), built and
        initialised by the caller; trained in place
    x : (N, ...) float32, the shared pool of training records, on the models' device
    y : (N,) int64
    rows : G int64 tensors, the rows of (x, y) each member trains on, in the order the
        one-at-a-time trainer would see them (its ``x = pool_x[rows]``)
    seeds : G seeds, the ``seed`` the one-at-a-time trainer would get for each member
    val : validation split, for early stopping and the history (shared by all members)

    Returns
    -------
    One :class:`TrainOutcome` per member; ``wall_s`` is the group's wall time split evenly.
    """
    g_n = len(models)
    if not (len(rows) == len(seeds) == g_n) or g_n == 0:
        raise ValueError(f"need one rows tensor and one seed per model, got {len(rows)}, {len(seeds)} for {g_n}")
    for m in models:
        reason = batched_unsupported(m)
        if reason is not None:
            raise ValueError(f"cannot train in a batched group: {reason}")
    start = time.perf_counter()
    device = x.device
    for m in models:
        m.train()
    stack = _Stack(models)
    container = nn.ModuleList(models)
    opt = make_optimizer(container, cfg)  # parameter order: model by model; state is per parameter
    sched = make_scheduler(opt, cfg)
    bs = cfg.batch_size
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # the plain loop's data-order streams
    drop_gens = [torch.Generator().manual_seed(s) for s in seeds]  # the plain loop's torch.manual_seed(seed)
    rows = [r.to(device=device, dtype=torch.int64) for r in rows]
    n_rows = torch.tensor([len(r) for r in rows], device=device)
    steps = [max(1, -(-len(r) // bs)) if len(r) else 0 for r in rows]
    es = cfg.early_stopping
    use_es = es.enabled and val is not None and len(val[1]) > 0
    best_value = [np.inf] * g_n
    best_epoch = [0] * g_n
    best_state: list[dict | None] = [None] * g_n
    stale = [0] * g_n
    running = [True] * g_n
    epochs_run = [0] * g_n
    history: list[list[dict]] = [[] for _ in range(g_n)]
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none")

    def dropout_fn(counts: list[int]) -> Callable[[torch.Tensor, float], torch.Tensor]:
        def apply(h: torch.Tensor, p: float) -> torch.Tensor:
            # per member, a mask for its real rows only, drawn as nn.Dropout draws it on CPU
            noise = torch.zeros_like(h)
            for g, c in enumerate(counts):
                if c:
                    noise[g, :c] = torch.empty((c, *h.shape[2:])).bernoulli_(1 - p, generator=drop_gens[g]).div_(1 - p)
            return h * noise

        return apply

    for epoch in range(cfg.epochs):
        active = [g for g in range(g_n) if running[g]]
        if not active:
            break
        n_steps = max(steps[g] for g in active)
        # every member's epoch order, padded to n_steps * bs: (G, n_steps * bs) rows, validity mask
        order = torch.zeros((g_n, n_steps * bs), dtype=torch.int64, device=device)
        valid = torch.zeros((g_n, n_steps * bs), dtype=torch.bool, device=device)
        for g in active:
            perm = torch.randperm(len(rows[g]), generator=gens[g]).to(device)
            order[g, : len(perm)] = rows[g][perm]
            valid[g, : len(perm)] = True
        loss_sum = torch.zeros(g_n, dtype=torch.float64, device=device)
        correct = torch.zeros(g_n, dtype=torch.int64, device=device)
        for t in range(n_steps):
            sl = slice(t * bs, (t + 1) * bs)
            idx, ok = order[:, sl], valid[:, sl]
            counts = [max(0, min(bs, len(rows[g]) - t * bs)) if running[g] else 0 for g in range(g_n)]
            live = [g for g in range(g_n) if counts[g] > 0]
            if not live:
                continue
            xb, yb = x[idx], y[idx]  # (G, B, ...), (G, B)
            leaves = stack.leaves()
            out = stack.forward(xb, dropout_fn(counts), leaves)  # (G, B, C)
            per = criterion(out.reshape(-1, out.shape[-1]), yb.reshape(-1)).view(g_n, -1)
            okf = ok.to(per.dtype)
            cnt = okf.sum(1)
            loss = ((per * okf).sum(1) / cnt.clamp_min(1)).sum()
            loss.backward()
            for leaf, params in zip(leaves, stack.params):
                grad = leaf.grad
                for g in range(g_n):
                    params[g].grad = grad[g] if counts[g] > 0 else None
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                loss_sum += (per.detach() * okf).sum(1).double()
                correct += ((out.detach().argmax(-1) == yb) & ok).sum(1)
        if sched is not None:
            sched.step()
        loss_cpu, correct_cpu = loss_sum.cpu().tolist(), correct.cpu().tolist()
        seen = n_rows.cpu().tolist()
        records = []
        for g in active:
            epochs_run[g] = epoch + 1
            s = max(int(seen[g]), 1)
            record = {"epoch": epoch + 1, "train_loss": loss_cpu[g] / s, "train_acc": correct_cpu[g] / s}
            if val is not None and len(val[1]) > 0:
                record["val_loss"], record["val_acc"] = evaluate(models[g], *val)
            history[g].append(record)
            records.append(record)
            if use_es:
                value = record["val_loss"] if es.metric == "val_loss" else -record["val_acc"]
                if value < best_value[g] - es.min_delta:
                    best_value[g], best_epoch[g], stale[g] = value, epoch + 1, 0
                    best_state[g] = copy.deepcopy(models[g].state_dict())
                else:
                    stale[g] += 1
                    if stale[g] >= es.patience:
                        running[g] = False
        if on_epoch is not None:
            on_epoch(epoch + 1, records)

    wall = (time.perf_counter() - start) / g_n
    outcomes = []
    for g, m in enumerate(models):
        if use_es and best_state[g] is not None:
            m.load_state_dict(best_state[g])
        else:
            best_epoch[g] = epochs_run[g]
        # own, contiguous copies: the parameters are views of the group's stacked buffers
        state = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
        outcomes.append(TrainOutcome(state=state, epochs_run=epochs_run[g], best_epoch=best_epoch[g],
                                     history=history[g], wall_s=wall))
    return outcomes
