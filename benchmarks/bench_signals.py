"""Benchmark 4: signals: inference throughput against a GEMM-bound estimate, and peak memory.

Throughput: ``miaudit.inference.logits.model_logits`` (the per-member inference of the signals stage) on
N records, records/s, next to the GEMM-bound estimate = (fp32 GEMM rate measured in the same
round) ÷ (2 · multiply-adds per record); at batch 1024 (miaudit's default) and 4096.

Memory: in a fresh process, M per-member parts of N records × C classes are written as the
member jobs write them, then (1) ``assemble_signals`` stacks them into the (M, 1, N, C) float32
``audit_logits.npy``, (2) ``load_signals`` opens it memory-mapped and ``audit.utility`` reads all
of it. Peak RSS (VmHWM, reset between phases) of each phase ÷ the size of the logits array;
target < 2x at N = 200k, M = 64, C = 100 (5.1 GB of logits; needs ~11 GB of free disk, see
``--tmp``).

    python benchmarks/bench_signals.py
    python benchmarks/bench_signals.py --quick
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import _common as C
import numpy as np


def throughput(args) -> dict:  # noqa: ANN001
    import torch

    from miaudit.models import build_model
    from miaudit.inference.logits import model_logits

    out = {}
    rng = np.random.default_rng(0)
    for name, params, shape, n in (
        ("fcn", {}, (600,), args.records),
        ("mlp", {"hidden": [256]}, (600,), args.records),
        ("cnn", {}, (1, 28, 28), max(512, args.records // 10)),
    ):
        torch.manual_seed(0)
        model = build_model(name, params, shape, 100 if name != "cnn" else 10).eval()
        x = (rng.random((n, *shape)) < 0.2).astype(np.float32)
        macs = _macs_per_record(model, shape)
        gemm: list[float] = []
        fns = {
            "gemm": lambda: gemm.append(C.gemm_gflops(args.gemm_n, min_seconds=0.3)),
            "batch1024": lambda: model_logits(model, x, [(False, 0, 0)], device=torch.device("cpu"), batch_size=1024),
            "batch4096": lambda: model_logits(model, x, [(False, 0, 0)], device=torch.device("cpu"), batch_size=4096),
        }
        times = C.paired_rounds(fns, args.rounds)
        gemm = gemm[-args.rounds :]
        bound = [g * 1e9 / (2 * macs) for g in gemm]  # records/s if inference ran at the GEMM rate
        rec = {}
        for k in ("batch1024", "batch4096"):
            rps = [n / t for t in times[k]]
            rec[k] = {"records_per_s": C.med(rps), "of_gemm_bound": C.med([r / b for r, b in zip(rps, bound)])}
        out[name] = {"records": n, "macs_per_record": macs, "gemm_gflops": gemm, "gemm_bound_records_per_s": C.med(bound),
                     **rec}
    return out


def _macs_per_record(model, shape) -> int:  # noqa: ANN001
    """Multiply-adds of one forward pass, counted with hooks on Linear and Conv2d layers."""
    import torch
    from torch import nn

    total = 0

    def hook(mod, inp, out) -> None:  # noqa: ANN001
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += out[0].numel() * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        model(torch.zeros((1, *shape)))
    for h in hs:
        h.remove()
    return total


def memory_phases(root: str, n_models: int, n: int, c: int) -> dict:
    """Runs in a fresh process: write parts, assemble, load and read; peak RSS per phase."""
    import numpy as np

    from miaudit.pipeline.attack import utility
    from miaudit.io import save_npz, save_npy, write_json
    from miaudit.rundir import RunDir
    from miaudit.signals import load_signals
    from miaudit.pipeline.signals import assemble_signals

    rd = RunDir(Path(root))
    out = {"baseline_rss_mb": C.rss_mb()}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, c, n)
    t = time.perf_counter()
    C.reset_peak_rss()
    for m in range(n_models):  # what each member job writes (compute_member_signals)
        save_npz(rd.member_signals(m), audit=rng.standard_normal((1, n, c), dtype=np.float32),
                 population=rng.standard_normal((1, 100, c), dtype=np.float32),
                 test=rng.standard_normal((1, 100, c), dtype=np.float32), fingerprint=np.array("bench"))
    out["parts"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": C.peak_rss_mb()}

    C.reset_peak_rss()
    t = time.perf_counter()
    assemble_signals(rd, n_models, "bench")
    design = np.zeros((n_models, n), bool)
    design[: n_models // 2] = True
    save_npy(rd.signals / "in_mask.npy", design)
    save_npy(rd.signals / "labels.npy", labels)
    save_npy(rd.signals / "population_labels.npy", labels[:100])
    save_npy(rd.signals / "test_labels.npy", labels[:100])
    write_json(rd.signals / "manifest.json", {"fingerprint": "bench", "n_models": n_models, "is_image": False})
    out["assemble"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": C.peak_rss_mb()}

    C.reset_peak_rss()
    t = time.perf_counter()
    signals = load_signals(rd.signals)
    acc = utility(signals, [0])["train_acc"]
    out["load_and_read"] = {"seconds": time.perf_counter() - t, "peak_rss_mb": C.peak_rss_mb(), "train_acc": acc}
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=50_000, help="records for the throughput test")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--gemm-n", type=int, default=2048)
    p.add_argument("--mem-records", type=int, default=200_000)
    p.add_argument("--mem-models", type=int, default=64)
    p.add_argument("--mem-classes", type=int, default=100)
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where the arrays are written")
    args = p.parse_args()
    if args.quick:
        args.records, args.rounds, args.gemm_n = 4_096, 1, 1024
        args.mem_records, args.mem_models = 20_000, 8
    C.setup_threads(args.threads)
    C.header("bench_signals: inference throughput and signals memory")

    thr = throughput(args)
    default = {"fcn": "batch4096", "mlp": "batch4096", "cnn": "batch1024"}  # model_logits' default batch
    C.table([[k, f"{v['records']:,}", f"{v['batch1024']['records_per_s']:,.0f}", f"{v['batch4096']['records_per_s']:,.0f}",
              f"{v['gemm_bound_records_per_s']:,.0f}", f"{100 * v[default[k]]['of_gemm_bound']:.0f}%"]
             for k, v in thr.items()],
            ["model", "records", "rec/s @1024", "rec/s @4096", "GEMM bound", "default of bound"])
    for k, v in thr.items():
        print(f"   RATIO {k}: inference / GEMM bound = {v[default[k]]['of_gemm_bound']:.2f} "
              f"(miaudit's default batch, {default[k][5:]})")

    logits_gb = args.mem_models * args.mem_records * args.mem_classes * 4 / 2**30
    need_gb = 2.2 * logits_gb
    free_gb = shutil.disk_usage(args.tmp).free / 2**30
    n = args.mem_records
    if free_gb < need_gb:
        n = int(n * free_gb / need_gb * 0.8)
        print(f"   only {free_gb:.1f} GB free in {args.tmp}: memory test at N={n:,} instead of {args.mem_records:,}")
    root = Path(tempfile.mkdtemp(prefix="miaudit-bench-signals-", dir=args.tmp))
    try:
        mem = C.run_isolated(memory_phases, str(root), args.mem_models, n, args.mem_classes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    array_mb = args.mem_models * n * args.mem_classes * 4 / 2**20
    print(f"   memory: M={args.mem_models} x N={n:,} x C={args.mem_classes} float32 logits = {array_mb:,.0f} MiB; "
          f"process baseline {mem['baseline_rss_mb']:.0f} MiB")
    C.table([[ph, f"{mem[ph]['seconds']:.1f}", f"{mem[ph]['peak_rss_mb']:,.0f}",
              f"{mem[ph]['peak_rss_mb'] / array_mb:.2f}x"] for ph in ("parts", "assemble", "load_and_read")],
            ["phase", "seconds", "peak RSS MiB", "÷ logits"])
    worst = max(mem[ph]["peak_rss_mb"] for ph in ("parts", "assemble", "load_and_read"))
    above = worst - mem["baseline_rss_mb"]
    print(f"   RATIO peak RSS / logits array = {worst / array_mb:.2f} (target < 2); "
          f"above the process baseline: {above / array_mb:.2f}")
    path = C.save_result("bench_signals", {"args": vars(args) | {"out": str(args.out), "tmp": str(args.tmp)},
                                           "throughput": thr, "memory": mem, "memory_records": n,
                                           "logits_mib": array_mb, "peak_over_logits": worst / array_mb,
                                           "peak_above_baseline_over_logits": above / array_mb},
                         args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
