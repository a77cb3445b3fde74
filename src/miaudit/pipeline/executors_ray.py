"""Pool members as Ray tasks (``runtime.executor: ray``): the path from one machine to many.

Each unit of work (``plan_units``: one member, or a batched group of small MLPs) is one Ray task
calling the executor's *work* (``members.run_members`` in miaudit), as every executor does. The
task writes the member's weights and sidecar, and its signals part, into the run directory itself,
so the run directory must be on a filesystem every node sees at the same path (``docs/cluster.md``);
the driver checks that the files of finished tasks are visible to it (the ``verify`` callback,
``members.check_visible``).

Why tasks write, not the driver: the run directory is the single source of truth. A task writes
exactly the files the local executors write, with the same atomic writers and in the same order
(weights, then the sidecar that marks the member done), so a pool half-trained by one executor
finishes with another, and a finished member survives the failure of any other task or of the
driver. Returning weights to the driver would ship every model through Ray's object store and
leave a window in which a trained member exists only in memory.

Failures: a task that raises or whose worker dies is retried ``runtime.ray_max_retries`` times.
A unit that still fails does not stop the others; once every unit has finished, one
:class:`~miaudit.errors.MembersFailedError` names the failed members (the finished ones are on
disk, and rerunning the same command trains only what is missing).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from miaudit import failpoints
from miaudit.config import RuntimeConfig
from miaudit.errors import ConfigError, MembersFailedError
from miaudit.pipeline.executors import Job, UnitCallback, Work, _worker_run, plan_units

log = logging.getLogger(__name__)

INSTALL_HINT = 'runtime.executor: ray needs Ray: pip install "miaudit[ray]"'


def import_ray() -> Any:
    """``import ray``, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _task(work: Work, job: Job, members: list[int]) -> list[int]:
    """The body of one Ray task: one unit of members, written to the run directory."""
    failpoints.hit("ray-task")  # a test makes one task die here (kill-once), to see it retried
    return _worker_run(work, job, members)


class RayExecutor:
    """Units as Ray tasks on a local Ray instance or an existing cluster (``runtime.ray_*``).

    Parameters
    ----------
    address : ``runtime.ray_address``; None starts a local Ray instance with every CPU of this
        machine (stopped again by ``close``), "auto" or ``host:port`` / ``ray://host:10001`` joins a
        running cluster. If Ray is already initialised in this process, that instance is used.
    num_cpus, num_gpus : resources each task reserves; a task uses ``max(1, int(num_cpus))``
        torch threads, and ``cuda`` when it reserves a GPU
    max_retries : retries of a task that raised or whose worker died
    batched, group_size : as for the local executors (``plan_units``)
    work : the unit of work (``executors.Work``)
    verify : called with the job and every member once all tasks finished (whether the files tasks
        on other nodes wrote are visible here); None = no check
    """

    def __init__(self, address: str | None = None, *, work: Work, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 max_retries: int = 2, batched: bool = False, group_size: int = 8,
                 verify: Callable[[Any, list[int]], None] | None = None) -> None:
        self.work = work
        self.verify = verify
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.batched = batched
        self.group_size = group_size
        self._ray: Any = None
        self._started = False

    @classmethod
    def from_runtime(cls, rt: RuntimeConfig, *, work: Work, batched: bool,
                     verify: Callable[[Any, list[int]], None] | None = None) -> RayExecutor:
        return cls(rt.ray_address, work=work, num_cpus=rt.ray_num_cpus, num_gpus=rt.ray_num_gpus,
                   max_retries=rt.ray_max_retries, batched=batched, group_size=rt.group_size, verify=verify)

    @property
    def threads(self) -> int:
        return max(1, int(self.num_cpus))

    def start(self) -> Any:
        """Connect to Ray (start a local instance, or join ``address``); return the ray module."""
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            if self.address is None:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            else:
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                except ConnectionError as exc:  # not running, unreachable, or refused (token authentication)
                    cause = f" ({_last_line(exc.__cause__).split('. ')[0]})" if exc.__cause__ else ""
                    raise ConfigError(
                        f"runtime.ray_address: cannot join Ray at {self.address!r}: {_last_line(exc)}{cause}; "
                        "is the cluster running (ray start --head), and its auth token on this machine?"
                    ) from exc
            self._started = True
            log.info("ray: %s, resources %s", self.address or "local instance", ray.cluster_resources())
        self._ray = ray
        self.check_feasible(ray)
        return ray

    def check_feasible(self, ray: Any) -> None:
        """Refuse resources per task that no node has on a local instance we started; on a cluster, warn
        (an autoscaler may still add such a node)."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= self.num_cpus and r.get("GPU", 0) >= self.num_gpus for r in nodes):
            return
        have = "; ".join(f"CPU {r.get('CPU', 0):g}, GPU {r.get('GPU', 0):g}" for r in nodes) or "none"
        msg = (f"runtime.ray_num_cpus={self.num_cpus:g}, ray_num_gpus={self.num_gpus:g}: no Ray node has that "
               f"much (nodes: {have})")
        if self._started and self.address is None:
            raise ConfigError(msg)
        log.warning("%s; the tasks wait until such a node joins the cluster", msg)

    def _slots(self, ray: Any) -> int:
        """Tasks the cluster can run at once with this executor's resources (at least 1)."""
        res = ray.cluster_resources()
        slots = res.get("CPU", 1.0) / self.num_cpus
        if self.num_gpus > 0:
            slots = min(slots, res.get("GPU", 0.0) / self.num_gpus)
        return max(1, int(slots))

    def run(self, member_ids: Sequence[int], job: Job, *, on_done: UnitCallback | None = None) -> None:
        ray = self.start()
        units = plan_units(member_ids, batched=self.batched and job.train, group_size=self.group_size,
                           workers=self._slots(ray))
        if not units:
            return
        # tasks run elsewhere: an absolute run directory, the device their reservation gives them
        job = replace(job, run_dir=str(Path(job.run_dir).resolve()), threads=self.threads,
                      device="cuda" if self.num_gpus > 0 else "cpu")
        task = ray.remote(_task).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                         max_retries=self.max_retries, retry_exceptions=True)
        pending = {task.remote(self.work, job, unit): unit for unit in units}
        failed: list[tuple[list[int], BaseException]] = []
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        ray.get(ref)
                    except Exception as exc:  # noqa: BLE001  reported with the other failures below
                        log.warning("pool member(s) %s failed after %d retries; the others go on: %s",
                                    unit, self.max_retries, _last_line(exc))
                        log.debug("pool member(s) %s: %s", unit, exc)  # with the task's traceback
                        failed.append((unit, exc))
                        continue
                    if on_done is not None:
                        on_done(unit)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            raise
        if failed:
            raise MembersFailedError(_failure_message(failed, self.max_retries, job.run_dir)) from failed[0][1]
        if self.verify is not None:
            self.verify(job, [m for unit in units for m in unit])

    def close(self) -> None:
        """``ray.shutdown()`` if this executor called ``ray.init``: stops a local instance it started, or
        disconnects from a cluster (which keeps running); a caller's instance is left alone."""
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failure_message(failed: list[tuple[list[int], BaseException]], retries: int, run_dir: str) -> str:
    members = sorted(m for unit, _ in failed for m in unit)
    return (f"pool member(s) {', '.join(map(str, members))} failed after {retries} retries "
            f"(first error: {_last_line(failed[0][1])}); finished members are kept in {run_dir}, "
            "rerun the same command to retry the failed ones")


def _last_line(exc: BaseException) -> str:
    """The last line of a (Ray task) error: the original exception, without the remote traceback."""
    return next((line.strip() for line in reversed(str(exc).splitlines()) if line.strip()), type(exc).__name__)
