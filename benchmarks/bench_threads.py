"""Benchmark 8: ``runtime.threads: auto`` against fixed thread counts, on a quiet and a busy machine.

One epoch of the study's FCN (600-1024-512-256-128-100, batch 128, Adam 1e-3) on the rows one
pool member trains on (half of the 20k audit pool: 10k records, ``--records``), through
miaudit's ``train_model``, in a fresh process per measurement (OpenMP reads its settings when
torch loads), for three settings:

- ``auto``: what ``runtime.threads: auto`` chooses in that process (``miaudit.threads``), with
  the worker environment it would set (``OMP_WAIT_POLICY=PASSIVE`` when it sees busy cores);
- ``1``: one thread; ``all``: every usable core (the old default), OpenMP's default wait policy;

under three conditions: ``quiet`` (nothing added; other people's work on a shared machine still
counts, so the load is printed), ``busy1`` (one busy-looping process pinned to core 0) and
``busy2`` (one per core, on the first two cores). Settings alternate within each round; the
median of the rounds is compared with the best fixed choice (1 or all) of the same condition.
Target: auto within 1.3x of the best fixed choice in every condition.

    python benchmarks/bench_threads.py              # 10k records, 2 rounds
    python benchmarks/bench_threads.py --quick      # 2k records, 1 round
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import _common as C

CHILD = r"""
import json, os, sys, time
records, setting = int(sys.argv[1]), sys.argv[2]
from miaudit.threads import choose_threads, omp_env
choice = choose_threads("auto" if setting == "auto" else ("all" if setting == "all" else int(setting)))
if setting == "auto" and os.environ.get("BENCH_CHILD_ENV") != "1":
    # as a spawned worker would start: the environment auto sets, then torch
    env = {**os.environ, **omp_env(choice), "BENCH_CHILD_ENV": "1"}
    os.execve(sys.executable, [sys.executable, "-c", sys.argv[3], *sys.argv[1:]], env)
import torch
torch.set_num_threads(choice.threads)
from miaudit.config import TrainConfig
from miaudit.data.synthetic import SyntheticPurchaseParams, generate_synthetic_purchase
from miaudit.models import build_model
from miaudit.training import train_model
ds = generate_synthetic_purchase(SyntheticPurchaseParams(n_records=records), seed=0)
x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y.astype("int64"))
torch.manual_seed(0)
warm = build_model("fcn", {}, (x.shape[1],), 100)
train_model(warm, x[:1024], y[:1024], TrainConfig(epochs=1), seed=1)  # first-call costs (kernels, allocator)
model = build_model("fcn", {}, (x.shape[1],), 100)
t = time.perf_counter()
train_model(model, x, y, TrainConfig(epochs=1), seed=0)
print(json.dumps({"s": time.perf_counter() - t, "threads": choice.threads, "reason": choice.reason,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}))
"""

SETTINGS = ("auto", "1", "all")


def measure(records: int, setting: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(records), setting, CHILD], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=10_000, help="training rows of the epoch (one member's half of 20k)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--conditions", default="quiet,busy1,busy2")
    args = p.parse_args()
    records, rounds = (2_000, 1) if args.quick else (args.records, args.rounds)
    C.header(f"threads: one FCN epoch on {records} records, auto vs 1 vs all threads")
    cores = sorted(os.sched_getaffinity(0))
    results: dict[str, dict] = {}
    rows = []
    for cond in args.conditions.split(","):
        n_busy = {"quiet": 0, "busy1": 1, "busy2": 2}[cond]
        spinners = [C.spin_core(cores[i % len(cores)]) for i in range(n_busy)]
        try:
            time.sleep(1.0 if spinners else 0.0)
            load = os.getloadavg()[0]
            runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
            for r in range(rounds):
                order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
                for s in order:
                    runs[s].append(measure(records, s))
        finally:
            for sp in spinners:
                sp.kill()
                sp.wait()
        sec = {s: statistics.median(m["s"] for m in runs[s]) for s in SETTINGS}
        best = min(sec["1"], sec["all"])
        results[cond] = {"load_1min": load, "seconds": sec, "auto_over_best": sec["auto"] / best,
                         "auto_threads": [m["threads"] for m in runs["auto"]],
                         "auto_reason": runs["auto"][-1]["reason"], "all_threads": runs["all"][-1]["threads"],
                         "runs": runs}
        rows.append([cond, f"{load:.1f}", f"{sec['auto']:.2f} ({'/'.join(str(m['threads']) for m in runs['auto'])})",
                     f"{sec['1']:.2f}", f"{sec['all']:.2f} ({runs['all'][-1]['threads']})",
                     f"{sec['auto'] / best:.2f}", f"{sec['all'] / sec['1']:.2f}"])
        C.table(rows[-1:], ["condition", "load", "auto s (threads)", "1 thread s", "all s (threads)",
                            "auto/best", "all/1"])
        print(f"   auto: {results[cond]['auto_reason']}")
    print()
    C.table(rows, ["condition", "load", "auto s (threads)", "1 thread s", "all s (threads)", "auto/best", "all/1"])
    worst = max(v["auto_over_best"] for v in results.values())
    print(f"RATIO auto / best fixed choice, worst condition: {worst:.2f} (target <= 1.3)")
    path = C.save_result("threads", {"records": records, "rounds": rounds, "conditions": results}, args.out,
                         quick=args.quick)
    print(f"   wrote {path}")


if __name__ == "__main__":
    main()
