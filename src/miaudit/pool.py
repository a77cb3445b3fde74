"""The pool of models: the balanced membership design, training each member, resuming.

M models each train on a random half of the audit pool, chosen so every record is IN for
exactly M/2 models (the LiRA/RMIA paired design): for every record, a seeded random
permutation of the models puts it IN for the first M/2. ``in_mask`` (M, N) is the ground
truth. Any member can play the target while the others are its references.

A member is finished when its weights (safetensors) and then its JSON sidecar have been
written (both atomically); the sidecar carries the pool fingerprint, so a rerun reuses
exactly the members trained under the same configuration.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits
from miaudit.io import load_weights, read_json, save_weights, write_json
from miaudit.models import AuditModel, build_model
from miaudit.progress import NullProgress, Progress
from miaudit.rundir import RunDir
from miaudit.training import train_model

log = logging.getLogger(__name__)


def membership_design(n_models: int, n_records: int, seed: int) -> np.ndarray:
    """(M, N) bool: every record IN for exactly M/2 models, each model IN on about N/2 records.

    >>> membership_design(4, 3, 0).sum(axis=0).tolist()
    [2, 2, 2]
    """
    if n_models % 2:
        raise ValueError(f"n_models must be even, got {n_models}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A_5E7]))
    ranks = rng.random((n_models, n_records)).argsort(axis=0).argsort(axis=0)
    return ranks < n_models // 2


def member_seed(seed: int, member: int) -> int:
    """The seed of one pool member, derived from the run seed (independent streams per member)."""
    return int(np.random.SeedSequence([seed, 0x90_01, member]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class PoolInputs:
    """Everything a member needs to train: the audit pool and validation split as tensors."""

    config: RunConfig
    input_shape: tuple[int, ...]
    n_classes: int
    audit_x: torch.Tensor  # (N, ...) float32
    audit_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    in_mask: np.ndarray  # (M, N) bool
    is_image: bool

    @classmethod
    def build(cls, config: RunConfig, dataset: Dataset, splits: Splits, in_mask: np.ndarray) -> PoolInputs:
        return cls(
            config=config,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            audit_x=torch.from_numpy(np.ascontiguousarray(dataset.x[splits.audit])),
            audit_y=torch.from_numpy(dataset.y[splits.audit].astype(np.int64)),
            val_x=torch.from_numpy(np.ascontiguousarray(dataset.x[splits.validation])),
            val_y=torch.from_numpy(dataset.y[splits.validation].astype(np.int64)),
            in_mask=in_mask,
            is_image=dataset.kind == "image",
        )


def new_model(config: RunConfig, input_shape: tuple[int, ...], n_classes: int, seed: int) -> AuditModel:
    torch.manual_seed(seed)
    return build_model(config.model.name, config.model.params, input_shape, n_classes)


def member_done(rd: RunDir, m: int, fingerprint: str) -> bool:
    side, weights = rd.member_sidecar(m), rd.member_weights(m)
    if not (side.is_file() and weights.is_file()):
        return False
    try:
        return read_json(side).get("pool_fingerprint") == fingerprint
    except Exception:  # noqa: BLE001  a damaged sidecar means: train again
        return False


def train_member(
    inputs: PoolInputs, m: int, rd: RunDir, *, device: torch.device, progress: Progress | None = None
) -> dict:
    """Train pool member ``m`` on its half of the audit pool; write weights, then the sidecar."""
    cfg = inputs.config
    seed = member_seed(cfg.seed, m)
    rows = torch.from_numpy(np.flatnonzero(inputs.in_mask[m]))
    x, y = inputs.audit_x[rows].to(device), inputs.audit_y[rows].to(device)
    val = (inputs.val_x.to(device), inputs.val_y.to(device)) if len(inputs.val_y) else None
    model = new_model(cfg, inputs.input_shape, inputs.n_classes, seed).to(device)
    progress = progress or NullProgress()
    with progress.bar(f"member {m + 1}/{cfg.pool.n_models}", cfg.train.epochs) as advance:
        outcome = train_model(model, x, y, cfg.train, seed=seed, val=val, on_epoch=lambda e, rec: advance(1))
    save_weights(rd.member_weights(m), outcome.state)
    sidecar = {
        "member": m,
        "pool_fingerprint": cfg.pool_fingerprint(),
        "seed": seed,
        "n_train": int(len(rows)),
        "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch,
        "history": outcome.history,
        "wall_s": outcome.wall_s,
        "extras": outcome.extras,
        "torch": torch.__version__,
        "host": platform.node(),
    }
    write_json(rd.member_sidecar(m), sidecar)
    return sidecar


def load_member(config: RunConfig, input_shape: tuple[int, ...], n_classes: int, rd: RunDir, m: int) -> AuditModel:
    """Rebuild member ``m`` from its safetensors weights, in eval mode."""
    model = build_model(config.model.name, config.model.params, input_shape, n_classes)
    model.load_state_dict(load_weights(rd.member_weights(m)))
    return model.eval()


TrainFn = Callable[..., dict]


def train_pool(
    inputs: PoolInputs,
    rd: RunDir,
    *,
    device: torch.device,
    progress: Progress | None = None,
) -> list[dict]:
    """Train every unfinished member (reusing finished ones) and return all sidecars."""
    cfg = inputs.config
    progress = progress or NullProgress()
    fp = cfg.pool_fingerprint()
    todo = [m for m in range(cfg.pool.n_models) if not member_done(rd, m, fp)]
    reused = cfg.pool.n_models - len(todo)
    if reused:
        progress.info(f"reusing {reused} finished model(s) in {rd.models}")
    with progress.bar("pool", cfg.pool.n_models) as advance:
        advance(reused)
        for m in todo:
            train_member(inputs, m, rd, device=device, progress=progress)
            advance(1)
    return [read_json(rd.member_sidecar(m)) for m in range(cfg.pool.n_models)]
