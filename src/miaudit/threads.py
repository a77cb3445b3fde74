"""How many torch threads to use: ``runtime.threads: auto`` on a machine that other work shares.

PyTorch's CPU build parallelises each matmul over OpenMP threads that meet at a barrier after
every parallel region. When another process holds one of those cores, every region waits for
the descheduled thread, and with GNU OpenMP's default wait policy the waiting threads spin on
the cores the others need: on 2 busy cores a 2-thread FCN epoch took ~10x as long as a 1-thread
one (``benchmarks/README.md``). ``auto`` therefore counts the cores this process may use
(affinity, cgroup CPU quota) and how many of them other work keeps busy right now, and takes
only the idle ones (at least one). Nothing here imports torch: :func:`omp_env` must run before
torch starts its thread pool (the CLI, spawned workers).

The choice never changes what a run computes beyond float rounding (GEMMs split their sums by
thread count); each member's sidecar records the threads it trained with.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: a core counts as taken when others keep it at least this busy (a core 60% busy still stalls a barrier)
BUSY_SHARE = 0.5
#: how long ``auto`` watches the CPUs before choosing (seconds)
SAMPLE_S = 0.25


@dataclass(frozen=True)
class ThreadChoice:
    """The threads a run uses and why (stored in ``run.json`` under ``thread_choice``)."""

    setting: str  # runtime.threads as given: "auto", "all" or a number
    threads: int  # torch threads in total (split among runtime.workers)
    per_worker: int  # torch threads of each worker process (== threads with one worker)
    usable_cores: int  # cores this process may use: affinity, capped by the cgroup quota
    busy_cores: float | None  # cores other work kept busy while auto looked (None: not measured)
    load_avg: float | None  # the machine's 1-minute load average (all cores)
    cpu_quota: float | None  # cgroup CPU quota in cores (None: no quota)
    omp_wait_policy: str | None  # OMP_WAIT_POLICY of worker processes: the user's, or PASSIVE when auto saw busy cores
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def affinity_cores() -> int:
    """Cores the scheduler lets this process run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None."""
    rel = {"v2": "", "v1": ""}
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                rel["v2"] = path.lstrip("/")
            elif "cpu" in controllers.split(","):
                rel["v1"] = path.lstrip("/")
    except (OSError, ValueError):
        pass
    for d in dict.fromkeys([root / rel["v2"], root]):  # v2: "max 100000" or "200000 100000"
        quota = _read_quota((d / "cpu.max").read_text().split() if (d / "cpu.max").is_file() else None)
        if quota is not None:
            return quota
    for base in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for d in dict.fromkeys([root / base / rel["v1"], root / base]):
            try:
                q = [(d / "cpu.cfs_quota_us").read_text().strip(), (d / "cpu.cfs_period_us").read_text().strip()]
            except OSError:
                continue
            quota = _read_quota(q)
            if quota is not None:
                return quota
    return None


def _read_quota(fields: list[str] | None) -> float | None:
    if not fields or len(fields) < 2 or fields[0] in ("max", "-1"):
        return None
    try:
        quota, period = float(fields[0]), float(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cpu_times(cpus: set[int] | None, stat: Path = Path("/proc/stat")) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` (all when None), from /proc/stat; None if unreadable."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        name, *vals = line.split()
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        v = [float(x) for x in vals]
        idle = v[3] + (v[4] if len(v) > 4 else 0.0)  # idle + iowait
        t = sum(v[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
        busy, total = busy + t - idle, total + t
    return (busy, total) if total > 0 else None


def busy_cores(sample_s: float = SAMPLE_S, stat: Path = Path("/proc/stat")) -> float | None:
    """Cores (among those this process may use) other work kept busy over the next ``sample_s`` seconds.

    This process sleeps meanwhile, so what /proc/stat counts as busy is other work. None where
    /proc/stat is missing (not Linux).
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    first = _cpu_times(cpus, stat)
    if first is None:
        return None
    time.sleep(sample_s)
    second = _cpu_times(cpus, stat)
    if second is None or second[1] <= first[1]:
        return None
    n = len(cpus) if cpus else (os.cpu_count() or 1)
    return n * (second[0] - first[0]) / (second[1] - first[1])


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def decide_threads(setting: int | str | None, *, workers: int = 1, affinity: int, quota: float | None,
                   busy: float | None, load_avg: float | None, total_cores: int | None = None,
                   env_threads: int | None = None, omp_wait_policy: str | None = None) -> ThreadChoice:
    """The pure decision behind :func:`choose_threads` (every machine fact passed in, for tests).

    ``auto``: usable = affinity capped by the quota (rounded down, at least 1); taken = cores
    other work keeps busy — measured over a short sample (``busy``), else the load average
    scaled to the usable share of the machine; threads = the usable cores not taken, counting
    a core taken when it is at least half busy, and at least 1. An ``OMP_NUM_THREADS`` set by
    the user caps it. ``all`` (or null): every usable core. A number: that many.
    With ``workers > 1`` the total is split evenly, at least 1 thread per worker.
    """
    usable = max(1, min(affinity, math.floor(quota + 1e-9) if quota else affinity))
    label = "all" if setting in (None, "all") else str(setting)
    if isinstance(setting, int) and not isinstance(setting, bool):
        threads, reason = setting, f"runtime.threads={setting}"
    elif label == "all":
        threads, reason = usable, f"runtime.threads=all: every usable core ({_cores_text(affinity, quota, usable)})"
    else:
        if busy is None and load_avg is not None:
            share = usable / total_cores if total_cores else 1.0
            taken_raw, how = max(0.0, load_avg * share), f"load average {load_avg:.1f}"
        else:
            taken_raw, how = max(0.0, busy or 0.0), f"{busy or 0.0:.1f} of them busy with other work"
        taken = min(usable, math.floor(taken_raw + (1 - BUSY_SHARE)))
        threads = max(1, usable - taken)
        reason = f"auto: {_cores_text(affinity, quota, usable)}, {how} -> {threads} thread{'s' * (threads != 1)}"
        if env_threads is not None and env_threads < threads:
            threads, reason = env_threads, reason + f"; OMP_NUM_THREADS={env_threads} caps it"
    if omp_wait_policy is None and workers > 1 and (busy or 0.0) >= BUSY_SHARE:
        omp_wait_policy = "PASSIVE"  # what omp_env gives the workers
    per_worker = max(1, threads // max(1, workers))
    if workers > 1:
        reason += f"; {workers} workers x {per_worker} thread{'s' * (per_worker != 1)}"
        if workers * per_worker > usable:
            reason += f" (more than the {usable} usable cores: expect contention)"
    return ThreadChoice(setting=label, threads=threads, per_worker=per_worker, usable_cores=usable,
                        busy_cores=None if busy is None else round(busy, 2),
                        load_avg=None if load_avg is None else round(load_avg, 2),
                        cpu_quota=quota, omp_wait_policy=omp_wait_policy, reason=reason)


def _cores_text(affinity: int, quota: float | None, usable: int) -> str:
    text = f"{usable} usable core{'s' * (usable != 1)}"
    if quota is not None and usable < affinity:
        text += f" (CPU quota {quota:g} of {affinity})"
    return text


def _env_threads() -> int | None:
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n >= 1 else None


def choose_threads(setting: int | str | None, *, workers: int = 1, sample_s: float = SAMPLE_S) -> ThreadChoice:
    """Decide ``runtime.threads`` on this machine now (``auto`` watches the CPUs for ``sample_s``)."""
    auto = setting == "auto"
    return decide_threads(
        setting, workers=workers, affinity=affinity_cores(), quota=cgroup_cpu_quota(),
        # a fixed setting records no machine readings, so its run.json is the same at every invocation
        busy=busy_cores(sample_s) if auto else None, load_avg=load_average() if auto else None,
        total_cores=os.cpu_count(),
        env_threads=_env_threads() if auto else None, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )


def omp_env(choice: ThreadChoice) -> dict[str, str]:
    """Environment for worker processes: their thread count, and PASSIVE waiting when others hold cores.

    With several threads per process and other work on the machine, GNU OpenMP's spinning
    threads take the cores the descheduled ones need; PASSIVE makes them sleep. On a quiet
    machine spinning is faster (1.7 s vs 3.2 s per FCN epoch, benchmarks/README.md), so it is
    only set when ``auto`` saw busy cores, and never over the user's own setting.
    """
    env = {"OMP_NUM_THREADS": str(choice.per_worker)}
    if "OMP_WAIT_POLICY" not in os.environ and choice.omp_wait_policy == "PASSIVE":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env
