"""Benchmark 1: training the study's FCN against the machine's limit, and against a plain PyTorch loop.

The FCN (600-1024-512-256-128-100, tanh, 1.32 M parameters) trains on Purchase-like records
(batch 128, Adam 1e-3). In alternating rounds in one process this measures:

- ``gemm``: the fp32 rate of a large torch GEMM (n x n x n), the machine's practical limit;
- ``miaudit``: one epoch of ``miaudit.training.train_model``;
- ``plain``: one epoch of a textbook PyTorch loop (same model, data order and batch size);
- ``pool_2x1``: how a pool uses the cores (``runtime.workers=2``): two members' epochs at once
  in two 1-thread worker processes (started beforehand; the span of the two epochs counts).

Achieved FLOP/s counts the matmuls of forward and backward exactly (per record and Linear
layer: 2·in·out forward, 2·in·out for the weight gradient, 2·in·out for the input gradient
except the first layer); elementwise work and the optimizer are not counted, so they show up
as lost efficiency. Printed: GFLOP/s of each, the share of the GEMM rate (target >= 75%;
DESIGN.md measured the plain loop at ~65%), miaudit ÷ plain, and where a step's time goes.

    python benchmarks/bench_training.py            # 20k records, 3 rounds
    python benchmarks/bench_training.py --quick    # smoke run
"""

from __future__ import annotations

import time

import _common as C
import torch
from torch import nn


def fcn_train_flops(model: nn.Module) -> int:
    """Matmul FLOPs to train on one record (forward + backward)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    total = 0
    for i, lin in enumerate(linears):
        mac = lin.in_features * lin.out_features
        total += 2 * mac + 2 * mac + (2 * mac if i > 0 else 0)
    return total


def data(n: int):
    from miaudit.data.synthetic import SyntheticPurchaseParams, generate_synthetic_purchase

    ds = generate_synthetic_purchase(SyntheticPurchaseParams(n_records=n), seed=0)
    return torch.from_numpy(ds.x), torch.from_numpy(ds.y)


def plain_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, bs: int, seed: int) -> None:
    """A textbook PyTorch epoch: default Adam, x[idx] per batch, loss.item() per batch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    running = 0.0
    for idx in torch.randperm(len(y), generator=gen).split(bs):
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        running += loss.item()


def _worker_init(records: int) -> None:
    global _X, _Y  # noqa: PLW0603  (per-process data of the pool variant)
    torch.set_num_threads(1)
    _X, _Y = data(records)


def _worker_epoch(barrier, seed: int) -> tuple[float, float]:  # noqa: ANN001
    """One epoch of miaudit's trainer in a 1-thread worker, started with its peer; (start, end) wall clock."""
    from miaudit.pipeline.configure import load_config
    from miaudit.models import build_model
    from miaudit.training import train_model

    cfg = load_config(None, ["train.epochs=1"]).train
    torch.manual_seed(seed)
    model = build_model("fcn", {}, (600,), 100)
    train_model(model, _X[:512], _Y[:512], cfg, seed=seed)  # warm-up
    torch.manual_seed(seed)
    model = build_model("fcn", {}, (600,), 100)
    barrier.wait()
    t0 = time.time()
    train_model(model, _X, _Y, cfg, seed=seed)
    return t0, time.time()


def step_anatomy(model_fn, x: torch.Tensor, y: torch.Tensor, steps: int) -> dict[str, dict[str, float]]:
    """Mean ms per batch of forward, backward and optimizer step, with torch's default and the fused Adam."""
    out = {}
    for name, kw in (("adam_default", {}), ("adam_fused", {"fused": True})):
        model = model_fn()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kw)
        loss_fn = nn.CrossEntropyLoss()
        acc = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        for i in range(steps + 2):
            xb, yb = x[i * 128 : (i + 1) * 128], y[i * 128 : (i + 1) * 128]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= 2:  # first steps allocate optimizer state
                acc["forward"] += t1 - t0
                acc["backward"] += t2 - t1
                acc["optimizer"] += t3 - t2
        out[name] = {k: 1e3 * v / steps for k, v in acc.items()}
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20_000, help="records per epoch (the study: 20k)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gemm-n", type=int, default=2048)
    p.add_argument("--no-pool", action="store_true", help="skip the 2-worker pool variant")
    args = p.parse_args()
    if args.quick:
        args.records, args.rounds, args.gemm_n = 2048, 2, 1024
    C.setup_threads(args.threads)
    C.header("bench_training: FCN training vs the GEMM limit and a plain loop")

    from miaudit.pipeline.configure import load_config
    from miaudit.models import build_model
    from miaudit.training import train_model

    x, y = data(args.records)
    cfg = load_config(None, ["train.epochs=1"]).train

    def new_model() -> nn.Module:
        torch.manual_seed(0)
        return build_model("fcn", {}, (600,), 100)

    flops_epoch = fcn_train_flops(new_model()) * len(y)
    n_params = sum(p.numel() for p in new_model().parameters())
    gemm_rates: list[float] = []

    def gemm() -> None:
        gemm_rates.append(C.gemm_gflops(args.gemm_n, min_seconds=0.5))

    fns = {
        "gemm": gemm,
        "miaudit": lambda: train_model(new_model(), x, y, cfg, seed=1),
        "plain": lambda: plain_epoch(new_model(), x, y, cfg.lr, cfg.batch_size, seed=1),
    }
    workers = None
    if not args.no_pool:
        # the pool's way to use the cores: 2 members at once, 1 thread each (runtime.workers=2)
        import concurrent.futures
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        manager = mp.Manager()
        workers = concurrent.futures.ProcessPoolExecutor(2, mp_context=mp, initializer=_worker_init,
                                                         initargs=(args.records,))
        pool_spans: list[float] = []

        def pool_epochs() -> None:
            barrier = manager.Barrier(2)
            spans = list(workers.map(_worker_epoch, [barrier, barrier], [1, 2]))
            pool_spans.append(max(e for _, e in spans) - min(s for s, _ in spans))

        fns["pool_2x1"] = pool_epochs
    # warm-up on a slice (imports, allocator, oneDNN kernels), then alternate
    train_model(new_model(), x[:512], y[:512], cfg, seed=1)
    plain_epoch(new_model(), x[:512], y[:512], cfg.lr, cfg.batch_size, seed=1)
    times = C.paired_rounds(fns, args.rounds, warmup=False)
    if workers is not None:
        workers.shutdown()
        manager.shutdown()
        times["pool_2x1"] = pool_spans  # the two epochs' span, without starting the workers
    gemm_rates = gemm_rates[-args.rounds :]
    per_round = {
        k: [flops_epoch / t / 1e9 for t in times[k]] for k in ("miaudit", "plain")
    }
    if workers is not None:
        per_round["pool_2x1"] = [2 * flops_epoch / t / 1e9 for t in times["pool_2x1"]]
    # median over rounds of (achieved rate / GEMM rate measured in the same round)
    share = {k: C.med([a / g for a, g in zip(per_round[k], gemm_rates)]) for k in per_round}
    speed = C.ratio(times["plain"], times["miaudit"])
    anatomy = step_anatomy(new_model, x, y, steps=min(20, len(y) // 128 - 2))

    print(f"   model: FCN {n_params:,} params; {len(y):,} records/epoch; {flops_epoch / 1e9:.1f} GFLOP (matmuls) per epoch")
    C.table(
        [
            ["gemm (limit)", f"{C.med(gemm_rates):.1f}", "-", "100%"],
            ["miaudit train_model", f"{C.med(per_round['miaudit']):.1f}", f"{C.med(times['miaudit']):.2f}",
             f"{100 * share['miaudit']:.0f}%"],
            ["plain PyTorch loop", f"{C.med(per_round['plain']):.1f}", f"{C.med(times['plain']):.2f}",
             f"{100 * share['plain']:.0f}%"],
            *([["miaudit pool, 2 workers x 1 thread", f"{C.med(per_round['pool_2x1']):.1f}",
                f"{C.med(times['pool_2x1']) / 2:.2f}", f"{100 * share['pool_2x1']:.0f}%"]] if "pool_2x1" in share else []),
        ],
        ["path", "GFLOP/s", "s/epoch", "of GEMM"],
    )
    print(f"   RATIO miaudit/gemm = {share['miaudit']:.2f} (target >= 0.75)   plain/gemm = {share['plain']:.2f}   "
          f"miaudit speed-up over plain = {speed:.2f}x")
    if "pool_2x1" in share:
        print(f"   RATIO pool (2 workers x 1 thread)/gemm = {share['pool_2x1']:.2f}: "
              f"{C.ratio(times['plain'], [t / 2 for t in times['pool_2x1']]):.2f}x the plain loop's models per hour")
    print("   where a batch's time goes (ms):")
    C.table([[k, *(f"{v[p]:.2f}" for p in ("forward", "backward", "optimizer"))] for k, v in anatomy.items()],
            ["optimizer", "forward", "backward", "step"])
    path = C.save_result("bench_training", {
        "args": vars(args) | {"out": str(args.out)},
        "n_params": n_params, "flops_per_epoch": flops_epoch,
        "gemm_gflops": gemm_rates, "seconds": times, "gflops": per_round,
        "ratio_miaudit_to_gemm": share["miaudit"], "ratio_plain_to_gemm": share["plain"],
        "ratio_pool_2x1_to_gemm": share.get("pool_2x1"),
        "speedup_miaudit_over_plain": speed, "step_anatomy_ms": anatomy,
    }, args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
