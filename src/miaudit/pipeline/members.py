"""The pool's per-member stages: train every member, then compute every member's signals, each
dispatched as units of work to an executor (``executors``, ``executors_ray``).

For member m a :class:`MemberJob` trains it unless it is finished, then computes its signals
part unless that is finished, writing exactly the files ``pool.train_member`` and
``signals.compute_member_signals`` write (weights, then the sidecar; ``signals/parts/member_XXX.npz``).
``run_members`` is that unit of work, the function every executor runs.

A :class:`MemberJob` holds JSON-able fields only (the resolved config as a dict, the run
directory as a path string, what to do, the device name, threads per worker), so it crosses
process and machine boundaries without shipping arrays. A worker rebuilds the dataset, the
splits and the membership design from the config, all deterministic in the seed
(:func:`member_context`, cached per process), and checks that it reproduced the same pool
fingerprint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from miaudit.config import RunConfig
from miaudit.pipeline.configure import validate_config
from miaudit.data import Dataset, Splits
from miaudit.errors import ConfigError, DataError, RunDirError
from miaudit.io import read_json, save_npy, write_json
from miaudit.models import build_model
from miaudit.pipeline.data import split_data
from miaudit.pipeline.executors import Executor, ProcessExecutor, SerialExecutor, retune_threads, threads_per_worker
from miaudit.pipeline.pool import PoolInputs, member_done, membership_design, reference_inputs, train_member, train_members_batched
from miaudit.pipeline.signals import assemble_signals, compute_member_signals, member_part_done, signals_fingerprint
from miaudit.progress import NullProgress, Progress
from miaudit.rundir import RunDir
from miaudit.signals import Signals, check_cached_signals, load_signals
from miaudit.threads import ThreadChoice, omp_env
from miaudit.training.batched import batched_unsupported, n_params

if TYPE_CHECKING:
    from miaudit.pipeline.executors_ray import RayExecutor

log = logging.getLogger(__name__)

#: "auto" batches models below this many parameters: DESIGN.md measured ≈2x for models under
#: ~200k parameters on 2 cores, and no gain for the study's 1.32 M-parameter FCN
BATCHED_MAX_PARAMS = 200_000


@dataclass(frozen=True)
class MemberJob:
    """What to do for each member of a unit; JSON-able, so any executor can ship it.

    Attributes
    ----------
    config : the resolved run configuration, ``RunConfig.model_dump(mode="json")``
    run_dir : the run directory
    fingerprint : the pool fingerprint the parent computed; a worker that rebuilds another
        one refuses to run (a config that does not round-trip would train other models)
    train : train the member unless finished
    signals : compute the member's signals part unless finished
    device : "cpu" or "cuda"
    threads : torch intra-op threads in a worker process (None: leave as is)
    """

    config: dict[str, Any]
    run_dir: str
    fingerprint: str
    train: bool = True
    signals: bool = False
    device: str = "cpu"
    threads: int | None = None

    @classmethod
    def create(cls, config: RunConfig, rd: RunDir, *, device: torch.device | str, train: bool = False,
               signals: bool = False, threads: int | None = None) -> MemberJob:
        return cls(config=config.model_dump(mode="json"), run_dir=str(rd.root), fingerprint=config.pool_fingerprint(),
                   train=train, signals=signals, device=str(torch.device(device)), threads=threads)


@dataclass
class MemberContext:
    """What member jobs need in one process: config, run directory, device, data as tensors."""

    config: RunConfig
    rd: RunDir
    device: torch.device
    inputs: PoolInputs | None = None
    dataset: Dataset | None = None
    splits: Splits | None = None

    def ensure_data(self) -> None:
        """Rebuild the dataset, splits and pool inputs from the config (deterministic in the seed)."""
        if self.dataset is None or self.splits is None:
            self.dataset, self.splits = split_data(self.config)
        if self.inputs is None and self.config.target is not None:  # the references of a target audit
            self.inputs = reference_inputs(self.config, self.dataset, self.splits)
        if self.inputs is None:
            in_mask = membership_design(self.config.pool.n_models, len(self.splits.audit), self.config.seed)
            self.inputs = PoolInputs.build(self.config, self.dataset, self.splits, in_mask)


_CONTEXT: dict[tuple[str, str, str], MemberContext] = {}


def _key(rd_root: str | Path, fingerprint: str, device: str) -> tuple[str, str, str]:
    return (str(Path(rd_root).resolve()), fingerprint, device)


def use_context(
    config: RunConfig, rd: RunDir, device: torch.device, *, inputs: PoolInputs | None = None,
    dataset: Dataset | None = None, splits: Splits | None = None,
) -> MemberContext:
    """Register data this process already holds, so in-process jobs do not rebuild it."""
    key = _key(rd.root, config.pool_fingerprint(), str(device))
    ctx = _CONTEXT.get(key)
    if ctx is None:
        _CONTEXT.clear()  # one run at a time per process: drop another run's arrays
        ctx = _CONTEXT[key] = MemberContext(config=config, rd=rd, device=torch.device(device))
    if inputs is not None:
        ctx.inputs = inputs
    if dataset is not None:
        ctx.dataset = dataset
    if splits is not None:
        ctx.splits = splits
    return ctx


def release_context() -> None:
    """Forget the cached data (the runner calls this when a run ends)."""
    _CONTEXT.clear()


def member_context(job: MemberJob) -> MemberContext:
    """The context for ``job`` in this process: cached, or rebuilt from the job's config."""
    key = _key(job.run_dir, job.fingerprint, job.device)
    ctx = _CONTEXT.get(key)
    if ctx is None:
        config = validate_config(job.config, source="member job")
        if config.pool_fingerprint() != job.fingerprint:
            raise RuntimeError(
                f"member job: the config rebuilt in this process has pool fingerprint {config.pool_fingerprint()}, "
                f"the caller's {job.fingerprint}; the config does not round-trip through JSON"
            )
        _CONTEXT.clear()
        ctx = _CONTEXT[key] = MemberContext(config=config, rd=RunDir(Path(job.run_dir)), device=torch.device(job.device))
    return ctx


def batched_reason(config: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> str | None:
    """Why the pool does not train in batched groups under ``config``, or None when it does."""
    mode = config.runtime.batched
    if mode is False:
        return "runtime.batched is false"
    model = build_model(config.model.name, config.model.params, input_shape, n_classes)
    reason = batched_unsupported(model, config.train.recipes)
    if reason is None and config.train.schedule_per == "batch":
        reason = "train.schedule_per: batch (members of a group take different numbers of steps)"
    if reason is None and mode == "auto" and n_params(model) >= BATCHED_MAX_PARAMS:
        reason = f"{n_params(model):,} parameters (auto batches models under {BATCHED_MAX_PARAMS:,})"
    if reason is not None and mode is True:
        log.info("runtime.batched: training one member at a time: %s", reason)
    return reason


def run_members(job: MemberJob, members: Sequence[int], *, progress: Progress | None = None) -> list[int]:
    """Do ``job`` for one unit of members in this process; return the members.

    A unit of several members trains as one batched group; signals are computed member by member.
    """
    ctx = member_context(job)
    progress = progress or NullProgress()
    members = [int(m) for m in members]
    rd, cfg = ctx.rd, ctx.config
    if job.train:
        todo = [m for m in members if not member_done(rd, m, job.fingerprint)]
        if todo:
            if ctx.inputs is None:
                ctx.ensure_data()
            assert ctx.inputs is not None
            if len(todo) > 1:
                train_members_batched(ctx.inputs, todo, rd, device=ctx.device, progress=progress)
            else:
                train_member(ctx.inputs, todo[0], rd, device=ctx.device, progress=progress)
    if job.signals:
        if ctx.dataset is None or ctx.splits is None:
            ctx.ensure_data()
        assert ctx.dataset is not None and ctx.splits is not None
        fp = signals_fingerprint(cfg, ctx.dataset.kind == "image")
        for m in members:
            if not member_part_done(rd, m, fp):
                compute_member_signals(cfg, ctx.dataset, ctx.splits, rd, m, device=ctx.device)
    return members


def make_executor(
    config: RunConfig, *, input_shape: tuple[int, ...], n_classes: int, progress: Progress | None = None,
    threads: ThreadChoice | None = None,
) -> SerialExecutor | ProcessExecutor | RayExecutor:
    """The executor ``config.runtime`` asks for, with batched groups where they apply.

    ``threads``: the run's thread choice (``miaudit.threads``); workers get its share each and,
    when other work holds cores, OpenMP's PASSIVE wait policy (set before they import torch).
    """
    rt = config.runtime
    batched = batched_reason(config, input_shape, n_classes) is None
    if rt.executor == "ray":
        from miaudit.pipeline.executors_ray import RayExecutor, import_ray

        if rt.device == "cuda" and rt.ray_num_gpus == 0:
            raise ConfigError("runtime.device: cuda with runtime.executor: ray needs runtime.ray_num_gpus > 0 "
                              "(a Ray task sees only the GPUs it reserves)")
        import_ray()  # fail now, before anything trains, if Ray is missing
        return RayExecutor.from_runtime(rt, work=run_members, batched=batched, verify=check_visible)
    if rt.workers == 1:
        retune = retune_threads if threads is not None and threads.setting == "auto" else None
        return SerialExecutor(run_members, progress=progress, batched=batched, group_size=rt.group_size, retune=retune)
    return ProcessExecutor(rt.workers, threads_per_worker(rt, threads), work=run_members, batched=batched,
                           group_size=rt.group_size, env=omp_env(threads) if threads is not None else None)


def train_pool(
    inputs: PoolInputs,
    rd: RunDir,
    *,
    device: torch.device,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Train every unfinished member (reusing finished ones) and return all sidecars.

    ``executor`` decides where members train (``miaudit.pipeline.executors``); default: one after another
    in this process (batched groups for small MLPs, ``runtime.batched``).
    """
    cfg = inputs.config
    progress = progress or NullProgress()
    fp = cfg.pool_fingerprint()
    todo = [m for m in range(cfg.pool.n_models) if not member_done(rd, m, fp)]
    reused = cfg.pool.n_models - len(todo)
    if reused:
        progress.info(f"reusing {reused} finished model(s) in {rd.models}")
    use_context(cfg, rd, device, inputs=inputs)  # in-process jobs reuse these tensors
    own = executor is None
    if executor is None:
        executor = make_executor(cfg, input_shape=inputs.input_shape, n_classes=inputs.n_classes, progress=progress)
    try:
        with progress.bar("pool", cfg.pool.n_models) as advance:
            advance(reused)
            if todo:
                job = MemberJob.create(cfg, rd, device=device, train=True)
                executor.run(todo, job, on_done=lambda ms: advance(len(ms)))
    finally:
        if own:
            executor.close()
    return [read_json(rd.member_sidecar(m)) for m in range(cfg.pool.n_models)]


def compute_signals(
    config: RunConfig,
    dataset: Dataset,
    splits: Splits,
    in_mask: np.ndarray,
    rd: RunDir,
    *,
    device: torch.device,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> Signals:
    """Compute (or reuse) every member's signals and assemble the pool arrays.

    ``executor`` computes the missing per-member parts (``miaudit.pipeline.executors``); default: in this
    process, one member after another.
    """
    progress = progress or NullProgress()
    is_image = dataset.kind == "image"
    fp = signals_fingerprint(config, is_image)
    manifest = rd.signals_manifest
    if manifest.is_file() and read_json(manifest).get("fingerprint") == fp:
        try:
            cached = load_signals(rd.signals)
            check_cached_signals(cached, n_models=config.pool.n_models, n_audit=len(splits.audit))
        except DataError as exc:  # damaged: recomputed from the members' parts, as if missing
            log.warning("recomputing the cached signals: %s", exc)
        else:
            progress.info(f"reusing signals in {rd.signals}")
            return cached
    m_total = config.pool.n_models
    todo = [m for m in range(m_total) if not member_part_done(rd, m, fp)]
    with progress.bar("signals", m_total) as advance:
        advance(m_total - len(todo))
        if todo and executor is not None:
            use_context(config, rd, device, dataset=dataset, splits=splits)  # in-process jobs reuse the arrays
            executor.run(todo, MemberJob.create(config, rd, device=device, signals=True),
                         on_done=lambda ms: advance(len(ms)))
        else:
            for m in todo:
                compute_member_signals(config, dataset, splits, rd, m, device=device)
                advance(1)
    assemble_signals(rd, m_total, fp)
    save_npy(rd.signals / "in_mask.npy", in_mask)
    save_npy(rd.signals / "labels.npy", dataset.y[splits.audit])
    save_npy(rd.signals / "population_labels.npy", dataset.y[splits.population])
    save_npy(rd.signals / "test_labels.npy", dataset.y[splits.test])
    save_npy(rd.signals / "record_ids.npy", dataset.ids[splits.audit])
    write_json(manifest, {"fingerprint": fp, "n_models": m_total, "is_image": is_image})
    return load_signals(rd.signals)


#: how long the driver waits for files that tasks on other nodes wrote to appear (NFS caches
#: directory entries for up to 60 s by default)
VISIBLE_WAIT_S = 60.0


def check_visible(job: MemberJob, members: Sequence[int], *, wait_s: float = VISIBLE_WAIT_S) -> None:
    """Raise RunDirError unless the files the tasks wrote for ``members`` are visible here.

    Tasks on other nodes write into the run directory; if it is not on a filesystem shared at the
    same path, their files never appear on the driver. A shared one may show them late (NFS caches
    directory entries for up to a minute), so this waits up to ``wait_s`` before saying so.
    """
    rd = RunDir(Path(job.run_dir))
    expected = ([rd.member_sidecar(m) for m in members if job.train]
                + [rd.member_signals(m) for m in members if job.signals])
    deadline = time.monotonic() + wait_s
    while missing := [p for p in expected if not p.is_file()]:
        if time.monotonic() >= deadline:
            raise RunDirError(
                f"Ray tasks finished, but {len(missing)} of their files are not in {rd.root} on this machine "
                f"(e.g. {missing[0].name}): the run directory must be on a filesystem every Ray node sees at "
                "the same path (docs/cluster.md)"
            )
        for d in {p.parent for p in missing}:
            with contextlib.suppress(OSError):
                os.listdir(d)  # refreshes a network filesystem's view of the directory
        time.sleep(1.0)
