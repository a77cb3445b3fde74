"""Where units of work run: one after another in this process, in parallel worker processes, or
(``executors_ray``) as Ray tasks.

An executor knows nothing of pools or signals: it is given the *work* (a module-level function
``work(job, unit) -> unit``, ``members.run_members`` in miaudit) and a *job* describing it (a
frozen dataclass of JSON-able fields with ``train`` and ``threads``, ``members.MemberJob``), and
runs the work on units of member ids. The work writes its results to the run directory itself,
so every executor resumes the same way and the run directory does not depend on which executor
produced it.

The interface
-------------
An executor has two methods; ``executors_ray.RayExecutor`` (``runtime.executor: ray``) implements the same::

    run(member_ids, job, *, on_done=None) -> None
        Do ``job`` for every member in ``member_ids``. Members are grouped into units with
        ``plan_units`` (a batched group of small MLPs when ``job.train`` and batching apply, or
        one member); each unit is one call of ``work(job, unit)`` somewhere. As each unit
        completes, ``on_done(unit)`` is called in the calling process. The first error is
        raised after the remaining units are cancelled.
    close() -> None
        Release the workers (also on leaving a ``with`` block).

Determinism
-----------
A member's weights depend on its seed, its data and the arithmetic, not on the executor: with
the same number of torch threads per model, the process executor writes byte-identical
weights to the serial one (``tests/integration/test_pool_training.py``). Different thread counts may
change float rounding (GEMMs split their sums differently), and so may batched training;
each sidecar records ``threads`` and, for batched groups, ``trained_with``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from miaudit import failpoints
from miaudit.config import RuntimeConfig
from miaudit.progress import Progress
from miaudit.threads import ThreadChoice, choose_threads

log = logging.getLogger(__name__)


UnitCallback = Callable[[list[int]], None]


class Job(Protocol):
    """What an executor reads of a job (``members.MemberJob``, a frozen dataclass): whether it trains
    (batched groups apply only then), the torch threads of a worker, and, for executors that run
    the work on other machines, the run directory and device (made absolute / set to what a task
    reserved). The rest is the work's business."""

    train: bool
    threads: int | None
    run_dir: str
    device: str


#: the unit of work: ``work(job, unit, progress=None) -> unit``, a module-level function (it is
#: pickled by name to reach worker processes and Ray tasks)
Work = Callable[..., list[int]]


class Executor(Protocol):
    """Runs the work on units of members; see the module docstring for the contract."""

    def run(self, member_ids: Sequence[int], job: Job, *, on_done: UnitCallback | None = None) -> None: ...

    def close(self) -> None: ...


# --- planning: which members train together --------------------------------------------------


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


# --- executors ------------------------------------------------------------------------------


class SerialExecutor:
    """Every unit in this process, one after another (torch uses all of ``runtime.threads``)."""

    def __init__(self, work: Work, progress: Progress | None = None, *, batched: bool = False, group_size: int = 8,
                 retune: Callable[[], None] | None = None) -> None:
        self.work = work
        self.progress = progress
        self.batched = batched
        self.group_size = group_size
        self.retune = retune  # called between units: runtime.threads: auto follows the machine's load

    def run(self, member_ids: Sequence[int], job: Job, *, on_done: UnitCallback | None = None) -> None:
        for i, unit in enumerate(plan_units(member_ids, batched=self.batched and job.train, group_size=self.group_size)):
            if i and self.retune is not None:
                self.retune()
            self.work(job, unit, progress=self.progress)
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


def _init_worker(threads: int | None, parent_pid: int | None = None, work_module: str | None = None) -> None:
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    failpoints.hit("worker-start")
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    # what every unit of work needs, loaded now: the first optimizer imports torch._dynamo (seconds)
    if work_module is not None:
        importlib.import_module(work_module)
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


def _worker_run(work: Work, job: Job, members: list[int]) -> list[int]:
    if job.threads:
        torch.set_num_threads(job.threads)
    return work(job, members)


class ProcessExecutor:
    """Units spread over ``workers`` processes, each with ``threads`` torch threads.

    Workers start with the ``spawn`` method (no fork of a process that holds torch's thread
    pools), stay alive between ``run`` calls (the training and signals stages share them and
    the data each worker rebuilt), and are stopped by ``close``.
    """

    def __init__(self, workers: int, threads: int | None = None, *, work: Work, batched: bool = False,
                 group_size: int = 8, start_method: str = "spawn", env: dict[str, str] | None = None) -> None:
        self.work = work
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
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=(self.threads, os.getpid(), self.work.__module__)
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

    def run(self, member_ids: Sequence[int], job: Job, *, on_done: UnitCallback | None = None) -> None:
        units = plan_units(member_ids, batched=self.batched and job.train, group_size=self.group_size,
                           workers=self.workers)
        if not units:
            return
        if job.threads is None and self.threads is not None:
            job = dataclasses.replace(job, threads=self.threads)  # type: ignore[type-var]
        pool = self._get_pool()
        with _sigint_ignored():  # workers started here inherit SIG_IGN: Ctrl-C reaches this process only
            futures = {pool.submit(_worker_run, self.work, job, unit): unit for unit in units}
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


