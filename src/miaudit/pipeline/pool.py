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

import dataclasses
import logging
import platform
from dataclasses import dataclass

import numpy as np
import torch

from miaudit import failpoints
from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits
from miaudit.errors import TrainingDivergedError
from miaudit.io import load_weights, read_json, save_weights, sha256_file, write_json
from miaudit.models import AuditModel, build_model
from miaudit.progress import NullProgress, Progress
from miaudit.rundir import RunDir
from miaudit.training import train_model
from miaudit.training.trainer import TrainOutcome
from miaudit.training.recipes import RecipeContext, build_recipes


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
    # only with train.recipes: what recipes may need (rankings by record id, the curriculum's proxy data)
    audit_ids: np.ndarray | None = None  # (N,) int64
    population: tuple[torch.Tensor, torch.Tensor] | None = None

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
            audit_ids=dataset.ids[splits.audit] if config.train.recipes else None,
            population=(
                torch.from_numpy(np.ascontiguousarray(dataset.x[splits.population])),
                torch.from_numpy(dataset.y[splits.population].astype(np.int64)),
            ) if config.train.recipes and len(splits.population) else None,
        )


def new_model(config: RunConfig, input_shape: tuple[int, ...], n_classes: int, seed: int) -> AuditModel:
    torch.manual_seed(seed)
    return build_model(config.model.name, config.model.params, input_shape, n_classes)


def member_done(rd: RunDir, m: int, fingerprint: str) -> bool:
    side, weights = rd.member_sidecar(m), rd.member_weights(m)
    if not (side.is_file() and weights.is_file()):
        return False
    try:
        meta = read_json(side)
        if meta.get("pool_fingerprint") != fingerprint:
            return False
        # damaged weights (truncated, replaced) are trained again, as missing ones are
        return meta.get("weights_sha256") in (None, sha256_file(weights))
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
    recipes, context = build_recipes(cfg.train.recipes), None
    if recipes:
        context = RecipeContext(
            config=cfg, rows=rows.numpy(), audit_x=inputs.audit_x, audit_y=inputs.audit_y, audit_ids=inputs.audit_ids,
            n_classes=inputs.n_classes, population=inputs.population, is_image=inputs.is_image,
            cache_dir=rd.models / "recipes", device=device,
        )
    with progress.bar(f"member {m + 1}/{cfg.pool.n_models}", cfg.train.epochs) as advance:
        outcome = train_model(model, x, y, cfg.train, seed=seed, val=val, on_epoch=lambda e, rec: advance(1),
                              recipes=recipes, context=context)
    return save_member(rd, cfg, m, seed, int(len(rows)), outcome)


def save_member(rd: RunDir, cfg: RunConfig, m: int, seed: int, n_train: int, outcome: TrainOutcome, **info: object) -> dict:
    """Write member ``m``'s weights, then its sidecar (the done marker); return the sidecar.

    A member whose training diverged (NaN or infinite loss or weights) is not written:
    ``TrainingDivergedError`` (the finished members stay, a rerun with a lower lr resumes).
    """
    from miaudit.training.trainer import divergence

    if (why := divergence(outcome)) is not None:
        raise TrainingDivergedError(f"member {m} {why}: lower train.lr (now {cfg.train.lr:g}); "
                                    "finished members are kept")
    save_weights(rd.member_weights(m), outcome.state)
    sidecar = {
        "member": m,
        "pool_fingerprint": cfg.pool_fingerprint(),
        "seed": seed,
        "n_train": n_train,
        "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch,
        "history": outcome.history,
        "wall_s": outcome.wall_s,
        "extras": outcome.extras,
        "weights_sha256": sha256_file(rd.member_weights(m)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        **info,
    }
    write_json(rd.member_sidecar(m), sidecar)
    failpoints.hit("member-done")
    return sidecar


def train_members_batched(
    inputs: PoolInputs, members: list[int], rd: RunDir, *, device: torch.device, progress: Progress | None = None
) -> list[dict]:
    """Train several members at once (``training/batched.py``): the recipe of ``train_member`` for each.

    Each member gets the seed, initialisation, training rows and data order ``train_member`` would
    give it, and the same files are written; weights agree with one-at-a-time training to float
    rounding. Only for models and configs ``batched_unsupported`` accepts.
    """
    from miaudit.training.batched import train_group

    cfg = inputs.config
    seeds = [member_seed(cfg.seed, m) for m in members]
    models = [new_model(cfg, inputs.input_shape, inputs.n_classes, s).to(device) for s in seeds]
    rows = [torch.from_numpy(np.flatnonzero(inputs.in_mask[m])) for m in members]
    val = (inputs.val_x.to(device), inputs.val_y.to(device)) if len(inputs.val_y) else None
    progress = progress or NullProgress()
    label = ", ".join(str(m + 1) for m in members)
    with progress.bar(f"members {label}/{cfg.pool.n_models} (batched)", cfg.train.epochs) as advance:
        outcomes = train_group(models, inputs.audit_x.to(device), inputs.audit_y.to(device), rows, cfg.train,
                               seeds=seeds, val=val, on_epoch=lambda e, recs: advance(1))
    saved, diverged = [], None
    for m, seed, r, out in zip(members, seeds, rows, outcomes):
        try:
            saved.append(save_member(rd, cfg, m, seed, int(len(r)), out, trained_with={"batched": members}))
        except TrainingDivergedError as exc:  # keep the group's finished members, then report the first
            diverged = diverged or exc
    if diverged is not None:
        raise diverged
    return saved


def load_member(config: RunConfig, input_shape: tuple[int, ...], n_classes: int, rd: RunDir, m: int) -> AuditModel:
    """Rebuild member ``m`` from its safetensors weights, in eval mode."""
    model = build_model(config.model.name, config.model.params, input_shape, n_classes)
    model.load_state_dict(load_weights(rd.member_weights(m)))
    return model.eval()


def reference_inputs(config: RunConfig, dataset: Dataset, splits: Splits) -> PoolInputs:
    """The references' ``PoolInputs``: they train on the audited records (``online``, each IN for half
    of them) or on population records only (``offline``); the executors' workers rebuild the same."""
    assert config.target is not None
    rows = splits.audit if config.target.references == "online" else splits.population
    design = membership_design(config.pool.n_models, len(rows), config.seed)
    return PoolInputs.build(config, dataset, dataclasses.replace(splits, audit=rows), design)


def reference_membership(config: RunConfig, n_audit: int) -> np.ndarray:
    """(M, N) bool: the references' membership on the audited records (offline: never IN)."""
    assert config.target is not None
    if config.target.references == "online":
        return membership_design(config.pool.n_models, n_audit, config.seed)
    return np.zeros((config.pool.n_models, n_audit), dtype=bool)
