"""Benchmark 9: the embedded default run on a busy machine, `runtime.threads` unset vs fixed choices.

Issue 16's acceptance test: with other processes keeping the cores loaded, `miaudit run` with no
`runtime.threads` set (``auto``) must take at most 1.3x what the best fixed thread choice takes
under the same load. This script starts ``--busy`` busy-looping processes (one pinned per core,
as other users' jobs), then runs the whole CLI (`miaudit run`, every stage: training, signals,
attacks, analysis, report) in a fresh run directory for each setting, alternating the settings
within each round so that they see the same load, and prints wall seconds, the ratio of each
setting to the best fixed one, and the load average beside them.

    python benchmarks/bench_busy_default.py                          # default run, 1 round (long)
    python benchmarks/bench_busy_default.py --set train.epochs=4     # the default with fewer epochs
    python benchmarks/bench_busy_default.py --busy 0                 # the same on a quiet machine
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

#: runtime.threads values compared: unset (the default, auto), one thread, every core
SETTINGS = {"unset (auto)": None, "1": "1", "all": "all"}


def run_once(setting: str | None, overrides: list[str], tmp: Path) -> dict:
    """Wall seconds of one `miaudit run` and the thread choice it recorded."""
    out = tmp / f"run-{setting or 'auto'}-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "miaudit.cli", "run", "--out", str(out), "-q"]
    for o in overrides + ([f"runtime.threads={setting}"] if setting is not None else []):
        argv += ["--set", o]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    choice = json.loads((out / "run.json").read_text()).get("thread_choice", {})
    timing = json.loads((out / "timing.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {"s": wall, "threads": choice.get("threads"), "reason": choice.get("reason"),
            "training_s": timing.get("stages", {}).get("training")}


def main() -> None:
    p = C.parser(__doc__.split("\n\n")[0])
    p.add_argument("--busy", type=int, default=2, help="busy-looping processes, one pinned per core (default 2)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every run")
    args = p.parse_args()
    C.header("Benchmark 9: embedded default on a busy machine, runtime.threads unset vs fixed")
    cores = sorted(os.sched_getaffinity(0))
    spinners = [C.spin_core(cores[i % len(cores)]) for i in range(args.busy)]
    times: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    loads = []
    try:
        time.sleep(2.0 if spinners else 0.0)
        with tempfile.TemporaryDirectory(prefix="bench-busy-") as tmp:
            for _ in range(args.rounds):
                for label, setting in SETTINGS.items():
                    loads.append(os.getloadavg()[0])
                    times[label].append(run_once(setting, args.overrides, Path(tmp)))
                    print(f"  {label:<13} {times[label][-1]['s']:7.1f} s  ({times[label][-1]['reason']})", flush=True)
    finally:
        for sp in spinners:
            sp.kill()
    med = {k: C.med([r["s"] for r in v]) for k, v in times.items()}
    best_fixed = min(med["1"], med["all"])
    rows = [[k, f"{med[k]:.1f}", f"{med[k] / best_fixed:.2f}", v[-1]["threads"]] for k, v in times.items()]
    C.table(rows, ["runtime.threads", "wall s (median)", "÷ best fixed", "threads"])
    ratio = med["unset (auto)"] / best_fixed
    print(f"busy processes: {args.busy}; load average during the runs: {min(loads):.1f}-{max(loads):.1f}; "
          f"overrides: {' '.join(args.overrides) or 'none'}")
    print(f"auto / best fixed = {ratio:.2f} (target <= 1.3): {'met' if ratio <= 1.3 else 'NOT met'}")
    C.save_result("busy_default", {"busy": args.busy, "overrides": args.overrides, "median_s": med,
                                   "ratio_auto_best_fixed": ratio, "loads": loads,
                                   "runs": {k: v for k, v in times.items()}})


if __name__ == "__main__":
    main()
