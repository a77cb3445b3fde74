"""Where pool members run: one after another in this process, or in parallel worker processes.

The pool's work is a list of *member jobs*. For member m a job trains it unless it is finished,
then computes its signals part unless that is finished, writing exactly the files
``pool.train_member`` and ``signals.compute_member_signals`` write (weights, then the sidecar;
``signals/parts/member_XXX.npz``). So every executor resumes the same way, and the run directory
does not depend on which executor produced it.

The interface
-------------
An executor has two methods; ``executors_ray.RayExecutor`` (``runtime.executor: ray``) implements the same::

    run(member_ids, job, *, on_done=None) -> None
        Do ``job`` (a MemberJob) for every member in ``member_ids``; finished work is skipped.
        Members are grouped into units with ``plan_units`` (a batched group of small MLPs, or
        one member); each unit is one call of ``run_members(job, unit)`` somewhere. As each unit
        completes, ``on_done(unit)`` is called in the calling process. The first error is
        raised after the remaining units are cancelled.
    close() -> None
        Release the workers (also on leaving a ``with`` block).

A :class:`MemberJob` holds JSON-able fields only (the resolved config as a dict, the run
directory as a path string, what to do, the device name, threads per worker), so it crosses
process and machine boundaries without shipping arrays. A worker rebuilds the dataset, the
splits and the membership design from the config, all deterministic in the seed
(:func:`member_context`, cached per process), and checks that it reproduced the same pool
fingerprint.

Determinism
-----------
A member's weights depend on its seed, its data and the arithmetic, not on the executor: with
the same number of torch threads per model, the process executor writes byte-identical
weights to the serial one (``tests/unit/test_executors.py``). Different thread counts may
change float rounding (GEMMs split their sums differently), and so may batched training;
each sidecar records ``threads`` and, for batched groups, ``trained_with``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from miaudit import failpoints
from miaudit.config import RunConfig, RuntimeConfig, validate_config
from miaudit.errors import ConfigError
from miaudit.progress import NullProgress, Progress
from miaudit.rundir import RunDir
from miaudit.threads import ThreadChoice, choose_threads, omp_env

if TYPE_CHECKING:
    from miaudit.data import Dataset, Splits
    from miaudit.pipeline.executors_ray import RayExecutor
    from miaudit.pipeline.pool import PoolInputs

log = logging.getLogger(__name__)

#: "auto" batches models below this many parameters: DESIGN.md measured ≈2x for models under
#: ~200k parameters on 2 cores, and no gain for the study's 1.32 M-parameter FCN
BATCHED_MAX_PARAMS = 200_000

UnitCallback = Callable[[list[int]], None]


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


class Executor(Protocol):
    """Runs member jobs; see the module docstring for the contract."""

    def run(self, member_ids: Sequence[int], job: MemberJob, *, on_done: UnitCallback | None = None) -> None: ...

    def close(self) -> None: ...


# --- the per-process context: data rebuilt from the config, once ---------------------------


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
        from miaudit.pipeline.pool import PoolInputs, membership_design
        from miaudit.pipeline.run import split_data

        if self.dataset is None or self.splits is None:
            self.dataset, self.splits = split_data(self.config)
        if self.inputs is None and self.config.target is not None:  # the references of a target audit
            from miaudit.pipeline.target import reference_inputs

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


# --- planning: which members train together --------------------------------------------------


def batched_reason(config: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> str | None:
    """Why the pool does not train in batched groups under ``config``, or None when it does."""
    from miaudit.models import build_model
    from miaudit.training.batched import batched_unsupported, n_params

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


def plan_units(
    member_ids: Sequence[int], *, batched: bool, group_size: int, workers: int = 1
) -> list[list[int]]:
    """Split members into units of work: batched groups of at most ``group_size``, else single members.

    Groups are as even as possible and at least as many as ``workers`` (so every worker has one).

    >>> plan_units(range(8), batched=True, group_size=8, workers=2)
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    >>> plan_units([0, 1, 2], batched=False, group_size=8)
    [[0], [1], [2]]
    """
    ids = list(member_ids)
    if not ids:
        return []
    if not batched:
        return [[m] for m in ids]
    n_groups = min(len(ids), max(workers, -(-len(ids) // group_size)))
    return [part.tolist() for part in np.array_split(np.array(ids, dtype=np.int64), n_groups) if len(part)]


# --- the work of one unit ---------------------------------------------------------------------


def run_members(job: MemberJob, members: Sequence[int], *, progress: Progress | None = None) -> list[int]:
    """Do ``job`` for one unit of members in this process; return the members.

    A unit of several members trains as one batched group; signals are computed member by member.
    """
    from miaudit.pipeline.pool import member_done, train_member, train_members_batched
    from miaudit.pipeline.signals import compute_member_signals, member_part_done, signals_fingerprint

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


# --- executors ------------------------------------------------------------------------------


class SerialExecutor:
    """Every unit in this process, one after another (torch uses all of ``runtime.threads``)."""

    def __init__(self, progress: Progress | None = None, *, batched: bool = False, group_size: int = 8,
                 retune: Callable[[], None] | None = None) -> None:
        self.progress = progress
        self.batched = batched
        self.group_size = group_size
        self.retune = retune  # called between units: runtime.threads: auto follows the machine's load

    def run(self, member_ids: Sequence[int], job: MemberJob, *, on_done: UnitCallback | None = None) -> None:
        for i, unit in enumerate(plan_units(member_ids, batched=self.batched and job.train, group_size=self.group_size)):
            if i and self.retune is not None:
                self.retune()
            run_members(job, unit, progress=self.progress)
            if on_done is not None:
                on_done(unit)

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Stop this worker when the process that started it is gone (killed with SIGKILL, say):
    a spawned pool worker would otherwise wait for work forever, holding its data in memory."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="miaudit-parent-watch", daemon=True).start()


def _init_worker(threads: int | None, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    failpoints.hit("worker-start")
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    # what every member job needs, loaded now: the first optimizer imports torch._dynamo (seconds)
    import miaudit.pipeline.pool  # noqa: F401
    import miaudit.signals  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so they inherit SIG_IGN (Python installs its
    KeyboardInterrupt handler only where SIGINT is not ignored): Ctrl-C in a terminal signals the whole
    process group, and a worker still importing torch would print a traceback. This process handles
    Ctrl-C and stops the workers (``close(kill=True)``). A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (child processes started in it inherit them)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ready(_: int = 0) -> int:
    time.sleep(0.05)
    return os.getpid()


def _worker_run(job: MemberJob, members: list[int]) -> list[int]:
    if job.threads:
        torch.set_num_threads(job.threads)
    return run_members(job, members)


class ProcessExecutor:
    """Units spread over ``workers`` processes, each with ``threads`` torch threads.

    Workers start with the ``spawn`` method (no fork of a process that holds torch's thread
    pools), stay alive between ``run`` calls (the training and signals stages share them and
    the data each worker rebuilt), and are stopped by ``close``.
    """

    def __init__(self, workers: int, threads: int | None = None, *, batched: bool = False, group_size: int = 8,
                 start_method: str = "spawn", env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.env = dict(env or {})  # environment of the spawned workers (OpenMP settings read at torch import)
        self.threads = threads
        self.batched = batched
        self.group_size = group_size
        self.start_method = start_method
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _get_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context(self.start_method)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.threads, os.getpid())
            )
            try:
                # each submit spawns a worker while none is idle: all start now, with this env, ignoring
                # SIGINT (a terminal's Ctrl-C reaches this process only, which stops them)
                with _environ(self.env), _sigint_ignored():
                    started = [self._pool.submit(_ready) for _ in range(self.workers)]
                for fut in started:  # waited for with SIGINT handled, so Ctrl-C while they start works
                    fut.result()
            except BaseException as exc:
                self.close(kill=isinstance(exc, KeyboardInterrupt))
                raise
        return self._pool

    def start(self, timeout: float = 600.0) -> float:
        """Start every worker and wait until each has loaded torch and miaudit; return the seconds taken.

        Optional (``run`` starts workers on demand); lets a caller pay, or measure, the start-up apart.
        """
        t = time.perf_counter()
        pool = self._get_pool()
        ready: set[int] = set()
        while len(ready) < self.workers and time.perf_counter() - t < timeout:
            with _sigint_ignored():
                results = pool.map(_ready, range(self.workers))
            ready |= set(results)
        return time.perf_counter() - t

    def run(self, member_ids: Sequence[int], job: MemberJob, *, on_done: UnitCallback | None = None) -> None:
        units = plan_units(member_ids, batched=self.batched and job.train, group_size=self.group_size,
                           workers=self.workers)
        if not units:
            return
        if job.threads is None and self.threads is not None:
            job = MemberJob(**{**job.__dict__, "threads": self.threads})
        pool = self._get_pool()
        with _sigint_ignored():  # workers started here inherit SIG_IGN: Ctrl-C reaches this process only
            futures = {pool.submit(_worker_run, job, unit): unit for unit in units}
        try:
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
                if on_done is not None:
                    on_done(futures[fut])
        except BaseException as exc:
            for fut in futures:
                fut.cancel()
            self.close(kill=isinstance(exc, KeyboardInterrupt))
            raise

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers; ``kill``: at once (Ctrl-C), their unfinished members resume on the next run."""
        if self._pool is not None:
            if kill:
                for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                    proc.terminate()  # SIGTERM: no traceback; an atomic write in flight leaves only a temporary
            self._pool.shutdown(wait=not kill, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retune_threads() -> None:
    """Choose ``auto`` threads again (between members): the load may have changed since the run began."""
    choice = choose_threads("auto")
    if choice.threads != torch.get_num_threads():
        log.info("threads: %s", choice.reason)
        torch.set_num_threads(choice.threads)


def threads_per_worker(runtime: RuntimeConfig, choice: ThreadChoice | None = None) -> int:
    """Threads of each worker: the run's thread choice split evenly over the workers, at least 1.

    Without a ``choice``: a numeric ``runtime.threads``, else this process's torch threads.
    """
    if choice is not None:
        return choice.per_worker
    total = runtime.threads if isinstance(runtime.threads, int) else (torch.get_num_threads() or os.cpu_count() or 1)
    return max(1, total // runtime.workers)


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
        return RayExecutor.from_runtime(rt, batched=batched)
    if rt.workers == 1:
        retune = retune_threads if threads is not None and threads.setting == "auto" else None
        return SerialExecutor(progress=progress, batched=batched, group_size=rt.group_size, retune=retune)
    return ProcessExecutor(rt.workers, threads_per_worker(rt, threads), batched=batched, group_size=rt.group_size,
                           env=omp_env(threads) if threads is not None else None)
