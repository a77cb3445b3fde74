"""Shared helpers for the benchmarks: machine facts, the GEMM peak, peak memory, paired timing, results.

Every benchmark compares miaudit's path with a baseline *in the same process run*, in
alternating rounds, and reports the median of the per-round ratios: on a shared, noisy
machine the absolute figures move, the ratios much less.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# --- machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, load average, versions and torch threads: stored with every result."""
    import numpy as np

    info: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_avg_1_5_15": list(os.getloadavg()),
        "mem_total_gb": round(meminfo_gb("MemTotal"), 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        # OpenMP's wait policy decides what idle threads do; on a shared, oversubscribed machine
        # the default (spin) made 2-thread training ~30x slower than PASSIVE (see README)
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")},
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def meminfo_gb(key: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


# --- memory ---------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MiB; ``reset_peak_rss`` starts a new phase."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_anon_mb() -> float:
    """Anonymous resident memory (heap, not file-backed pages of memory maps), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return rss_mb()


def _watchdog(cap_mb: float) -> None:
    import threading

    def watch() -> None:
        while True:
            if rss_anon_mb() > cap_mb:
                sys.stderr.write(f"benchmark child: anonymous RSS over {cap_mb:.0f} MiB, stopping it\n")
                os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def _isolated_entry(fn: Callable[..., dict], args: tuple, kwargs: dict, cap_gb: float | None) -> dict:
    if cap_gb:
        _watchdog(cap_gb * 1024)
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except MemoryError:
        out = {"error": "MemoryError"}
    out.setdefault("child_wall_s", time.perf_counter() - start)
    out.setdefault("peak_rss_mb", peak_rss_mb())
    return out


def run_isolated(fn: Callable[..., dict], *args: Any, rss_cap_gb: float | None = None, **kwargs: Any) -> dict:
    """Run ``fn(*args, **kwargs)`` in a fresh (spawned) process; its dict plus its peak RSS.

    A fresh process per measurement keeps one phase's memory peak from hiding another's. With
    ``rss_cap_gb`` a watchdog stops the child when its anonymous memory passes the cap (the
    result is then ``{"error": ...}``), so a too-large run cannot push a shared machine into the
    OOM killer.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        try:
            return pool.submit(_isolated_entry, fn, args, kwargs, rss_cap_gb).result()
        except BrokenProcessPool:
            return {"error": f"stopped: anonymous RSS over the {rss_cap_gb} GB cap"}


# --- compute --------------------------------------------------------------------------------


def gemm_gflops(n: int = 2048, min_seconds: float = 1.0, threads: int | None = None) -> float:
    """fp32 GEMM rate (GFLOP/s) of torch on an n x n x n product: best of repeated runs."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        best, spent = 0.0, 0.0
        while spent < min_seconds:
            t = time.perf_counter()
            a @ b
            dt = time.perf_counter() - t
            spent += dt
            best = max(best, 2 * n**3 / dt / 1e9)
        return best
    finally:
        torch.set_num_threads(before)


def paired_rounds(fns: dict[str, Callable[[], Any]], rounds: int, *, warmup: bool = True) -> dict[str, list[float]]:
    """Run every function once per round, in turn, for ``rounds`` rounds; wall seconds per call.

    Alternating keeps the variants side by side in time, so load from other processes hits
    them alike; compare them with ``ratio`` (median of per-round ratios).
    """
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[i] / den[i]."""
    return statistics.median(a / b for a, b in zip(num, den))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# --- output ---------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a fast smoke run on small sizes (figures not meaningful)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON result goes")
    return p


def setup_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def save_result(name: str, payload: dict, out_dir: Path = RESULTS, *, quick: bool = False) -> Path:
    """Write ``<name>[-quick]-<timestamp>.json`` and ``<name>[-quick]-latest.json``; return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    body = json.dumps({"benchmark": name, "quick": quick, "machine": machine_info(), **payload}, indent=2,
                      sort_keys=True, default=str)
    path = out_dir / f"{stem}-{stamp}.json"
    path.write_text(body + "\n")
    (out_dir / f"{stem}-latest.json").write_text(body + "\n")
    return path


def header(title: str) -> None:
    m = machine_info()
    print(f"== {title}")
    print(f"   {m['date']}  nproc={m['nproc']}  cpu={m['cpu_model']}  torch={m.get('torch')} "
          f"threads={m.get('torch_threads')}  load={'/'.join(f'{x:.1f}' for x in m['load_avg_1_5_15'])}  "
          f"OMP_WAIT_POLICY={m['env']['OMP_WAIT_POLICY'] or 'default'}")
    sys.stdout.flush()


def table(rows: list[list[Any]], head: list[str]) -> None:
    cells = [[str(c) for c in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for j, r in enumerate(cells):
        print("   " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("   " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def spin_core(core: int) -> "subprocess.Popen":
    """A process that keeps one core busy (pinned to it), as another user's job would."""
    import subprocess
    import sys

    code = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])
