"""Benchmark 6: ``miaudit run`` end to end, broken down by stage (from ``RUN_DIR/timing.json``).

Runs the CLI on the embedded default (synthetic Purchase-like data, 8 FCNs, 20 epochs) in a
temporary run directory, then prints the wall time of each stage (data, training, signals,
attacks, analysis, report; defences when configured) and its share of the total. Side by side,
in this process: a plain PyTorch loop trains one epoch of member 0 with the same recipe, rows
and data order; x epochs x M gives what the plain loop would spend on the pool, next to
miaudit's training stage.

    python benchmarks/bench_end_to_end.py                       # the embedded default (minutes)
    python benchmarks/bench_end_to_end.py --set runtime.workers=2
    python benchmarks/bench_end_to_end.py --quick               # a tiny pool of small MLPs
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

#: the stages every run reports (analysis only when analysis.vulnerability is on)
STAGES = ("data", "training", "signals", "attacks", "analysis", "defences", "report")

QUICK = [
    "data.params.n_records=1400", "data.params.n_features=60", "data.params.n_classes=5", "data.params.n_parents=3",
    "data.splits.audit=600", "data.splits.population=300", "data.splits.validation=100", "data.splits.test=300",
    "model.name=mlp", "model.params.hidden=[64]", "train.epochs=10", "train.lr=0.003", "train.batch_size=64",
    "pool.n_models=4", "analysis.tsne=false",
]


def plain_epoch_of_member0(overrides: list[str]) -> tuple[float, int, int]:
    """Seconds for one plain-loop epoch of member 0 of the configured pool; (seconds, epochs, M)."""
    import numpy as np

    from bench_pool import plain_member
    from miaudit.pipeline.configure import load_config
    from miaudit.pipeline.pool import PoolInputs, membership_design
    from miaudit.pipeline.data import split_data

    cfg = load_config(None, overrides)
    dataset, splits = split_data(cfg)
    in_mask = membership_design(cfg.pool.n_models, len(splits.audit), cfg.seed)
    one = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
    inputs = PoolInputs.build(one, dataset, splits, in_mask)
    small = PoolInputs(**{**inputs.__dict__, "in_mask": np.zeros_like(in_mask) | (np.arange(in_mask.shape[1]) < 256)})
    plain_member(small, 0)  # warm-up
    t = time.perf_counter()
    plain_member(inputs, 0)
    return time.perf_counter() - t, cfg.train.epochs, cfg.pool.n_models


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a config override (repeatable)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run directory here")
    args = p.parse_args()
    overrides = ([*QUICK] if args.quick else []) + args.overrides
    if args.threads:
        overrides.append(f"runtime.threads={args.threads}")
    C.setup_threads(args.threads)
    C.header("bench_end_to_end: `miaudit run` by stage")
    out = args.keep or Path(tempfile.mkdtemp(prefix="miaudit-bench-e2e-")) / "run"
    cmd = [sys.executable, "-m", "miaudit.cli", "run", "--out", str(out), "--quiet", "--force"]
    for o in overrides:
        cmd += ["--set", o]
    print("   " + " ".join(cmd[1:]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"miaudit run failed (exit {proc.returncode})")
    timing = json.loads((out / "timing.json").read_text())
    stages = timing["stages_s"]
    total = timing["total_s"]
    order = [*[k for k in STAGES if k in stages], *[k for k in stages if k not in STAGES]]  # pipeline order
    rows = [[k, f"{stages[k]:.1f}", f"{100 * stages[k] / total:.0f}%"] for k in order]
    rows.append(["(outside stages)", f"{total - sum(stages.values()):.1f}", ""])
    rows.append(["total (run_audit)", f"{total:.1f}", "100%"])
    rows.append(["process wall (incl. imports)", f"{wall:.1f}", ""])
    C.table(rows, ["stage", "seconds", "share"])
    missing = [s for s in STAGES if s not in stages]
    if missing:
        print(f"   stages not in timing.json: {', '.join(missing)} (not run under this config)")
    rt = timing.get("runtime", {})
    print(f"   runtime: {rt}")

    plain_s, epochs, m = plain_epoch_of_member0(overrides)
    plain_pool = plain_s * epochs * m
    ratio = plain_pool / stages["training"]
    print(f"   baseline: plain loop, 1 epoch of member 0 = {plain_s:.2f} s -> x {epochs} epochs x {m} members "
          f"= {plain_pool:.1f} s estimated for the pool")
    print(f"   RATIO training stage: plain-loop estimate / miaudit = {ratio:.2f}x; "
          f"training = {100 * stages['training'] / total:.0f}% of the run")
    path = C.save_result("bench_end_to_end", {"overrides": overrides, "timing": timing, "process_wall_s": wall,
                                              "plain_member_epoch_s": plain_s, "plain_pool_estimate_s": plain_pool,
                                              "speedup_training_over_plain_estimate": ratio},
                         args.out, quick=args.quick)
    print(f"   saved {path}")
    if args.keep is None:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
