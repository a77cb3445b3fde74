"""Benchmark 2: training a pool with miaudit against a plain PyTorch loop, same recipe and data order.

For each model, (a) the study's FCN (1.32 M params), (b) a small MLP (600-256-100, 180k params)
and (c) the small CNN (Fashion-MNIST, ~0.1 M params), M pool members are trained:

- ``plain``: a textbook loop, one member after another: each member's seed, initialisation,
  training rows and data order exactly as miaudit gives them (``member_seed``, ``new_model``,
  one ``randperm`` per epoch from a generator seeded with the member's seed), default Adam,
  ``loss.item()`` per batch;
- miaudit's ``train_pool`` with each executor: ``serial`` (one at a time, miaudit's trainer),
  ``batched`` (members stacked into batched matmuls, MLPs only), ``workers2`` (2 processes,
  1 thread each; start-up reported apart), ``workers2+batched``.

Printed per model and variant: wall time, speed-up over ``plain`` (target >= 2x on the MLP), and
the members' test accuracy next to the plain loop's (they must agree within noise).

    python benchmarks/bench_pool.py                  # defaults: 20k-record pool (CNN: 10k), 2 epochs
    python benchmarks/bench_pool.py --models mlp     # one model
    python benchmarks/bench_pool.py --quick
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import _common as C
import numpy as np
import torch
from torch import nn

#: per model: config overrides and the number of members (M) by default
MODELS = {
    "fcn": (["model.name=fcn"], 4),
    "mlp": (["model.name=mlp", "model.params.hidden=[256]"], 8),
    "cnn": (["data.name=fashion-mnist", "model.name=cnn"], 4),
}


def make_config(model: str, audit: int, epochs: int, members: int, test: int):
    from miaudit.pipeline.configure import load_config

    over, _ = MODELS[model]
    sizes = [f"data.splits.audit={audit}", "data.splits.population=0", "data.splits.validation=0",
             f"data.splits.test={test}"]
    if model != "cnn":
        sizes.append(f"data.params.n_records={audit + test}")
    return load_config(None, [*over, *sizes, f"train.epochs={epochs}", f"pool.n_models={members}",
                              "analysis.vulnerability=false"])


def plain_member(inputs, m: int) -> nn.Module:
    """One member with a textbook loop, on exactly the rows, seed and data order miaudit uses."""
    from miaudit.pipeline.pool import member_seed, new_model

    cfg = inputs.config
    seed = member_seed(cfg.seed, m)
    model = new_model(cfg, inputs.input_shape, inputs.n_classes, seed)
    rows = torch.from_numpy(np.flatnonzero(inputs.in_mask[m]))
    x, y = inputs.audit_x[rows], inputs.audit_y[rows]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(cfg.train.epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(cfg.train.batch_size):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss.item()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(torch.cat([model(x[i : i + 2048]).argmax(1) for i in range(0, len(y), 2048)]).eq(y).float().mean())


def run_model(name: str, args, tmp: Path) -> dict:
    from miaudit.pipeline.data import split_data
    from miaudit.pipeline.executors import ProcessExecutor, SerialExecutor
    from miaudit.pipeline.members import release_context, run_members, train_pool
    from miaudit.pipeline.pool import (
        PoolInputs,
        load_member,
        membership_design,
        new_model,
    )
    from miaudit.rundir import prepare_run_dir
    from miaudit.training.batched import batched_unsupported

    members = args.members or MODELS[name][1]
    audit = args.audit or (10_000 if name == "cnn" else 20_000)
    cfg = make_config(name, audit, args.epochs, members, args.test)
    dataset, splits = split_data(cfg)
    in_mask = membership_design(members, len(splits.audit), cfg.seed)
    inputs = PoolInputs.build(cfg, dataset, splits, in_mask)
    xt = torch.from_numpy(np.ascontiguousarray(dataset.x[splits.test]))
    yt = torch.from_numpy(dataset.y[splits.test].astype(np.int64))

    probe = new_model(cfg, inputs.input_shape, inputs.n_classes, 0)
    n_params = sum(p.numel() for p in probe.parameters())
    can_batch = batched_unsupported(probe) is None
    accs: dict[str, list[float]] = {}
    startups: dict[str, list[float]] = {}
    counter = iter(range(10_000))

    def plain() -> None:
        accs["plain"] = [accuracy(plain_member(inputs, m), xt, yt) for m in range(members)]

    def via(label: str, make_executor):  # noqa: ANN001, ANN202
        def go() -> None:
            root = tmp / f"{name}-{label}-{next(counter)}"
            rd = prepare_run_dir(root, cfg.pool_fingerprint())
            release_context()
            with make_executor() as ex:
                if hasattr(ex, "start"):  # worker processes: start-up (imports) measured apart
                    startups.setdefault(label, []).append(ex.start())
                train_pool(inputs, rd, device=torch.device("cpu"), executor=ex)
            accs[label] = [accuracy(load_member(cfg, inputs.input_shape, inputs.n_classes, rd, m), xt, yt)
                           for m in range(members)]
            release_context()
            shutil.rmtree(root, ignore_errors=True)

        return go

    fns = {"plain": plain, "serial": via("serial", lambda: SerialExecutor(run_members, batched=False))}
    if can_batch:
        fns["batched"] = via("batched", lambda: SerialExecutor(run_members, batched=True, group_size=members))
    if not args.no_workers and not (args.quick and name != "mlp"):  # --quick: workers on the MLP only
        fns["workers2"] = via("workers2", lambda: ProcessExecutor(2, threads=1, work=run_members, batched=False))
        if can_batch:
            fns["workers2+batched"] = via("workers2+batched",
                                          lambda: ProcessExecutor(2, threads=1, work=run_members, batched=True, group_size=members))
    # warm-up outside the timing: lazy imports (torch._dynamo on the first optimizer), kernels
    small = PoolInputs(**{**inputs.__dict__, "config": cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"epochs": 1})}), "in_mask": np.zeros_like(in_mask) | (np.arange(len(in_mask[0])) < 256)})
    plain_member(small, 0)
    from miaudit.training import train_model

    train_model(new_model(cfg, inputs.input_shape, inputs.n_classes, 0), inputs.audit_x[:256], inputs.audit_y[:256],
                small.config.train, seed=0)
    print(f"-- {name}: {n_params:,} params, M={members}, {len(splits.audit):,}-record pool "
          f"(~{len(splits.audit) // 2:,} per member), {args.epochs} epoch(s), test {len(yt):,}")
    times = C.paired_rounds(fns, args.rounds, warmup=False)
    rows, out = [], {"n_params": n_params, "members": members, "audit": len(splits.audit), "seconds": times,
                     "startup_seconds": startups, "test_acc": accs, "speedup_over_plain": {},
                     "speedup_over_plain_excl_startup": {}}
    base_acc = np.mean(accs["plain"])
    for k in fns:
        sp = C.ratio(times["plain"], times[k])
        out["speedup_over_plain"][k] = sp
        warm = [t - u for t, u in zip(times[k], startups[k])] if k in startups else times[k]
        sp_warm = C.ratio(times["plain"], warm)
        out["speedup_over_plain_excl_startup"][k] = sp_warm
        diff = max(abs(a - b) for a, b in zip(accs[k], accs["plain"]))
        rows.append([k, f"{C.med(times[k]):.1f}", f"{sp:.2f}x",
                     f"{C.med(startups[k]):.1f}" if k in startups else "-", f"{sp_warm:.2f}x",
                     f"{np.mean(accs[k]):.4f}", f"{diff:.4f}"])
    C.table(rows, ["variant", "seconds", "vs plain", "worker start-up s", "vs plain excl. start-up", "test acc",
                   "max |Δacc| vs plain"])
    best = max((k for k in fns if k != "plain"), key=lambda k: out["speedup_over_plain"][k])
    best_warm = max((k for k in fns if k != "plain"), key=lambda k: out["speedup_over_plain_excl_startup"][k])
    out["best"], out["best_excl_startup"] = best, best_warm
    print(f"   RATIO {name}: best miaudit ({best}) = {out['speedup_over_plain'][best]:.2f}x plain; excluding worker "
          f"start-up ({best_warm}) = {out['speedup_over_plain_excl_startup'][best_warm]:.2f}x (plain acc {base_acc:.4f})")
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,fcn,cnn", help="comma-separated: fcn, mlp, cnn")
    p.add_argument("--audit", type=int, default=None,
                   help="audit-pool records, each member trains on half (default: 20k; 10k images for the CNN)")
    p.add_argument("--test", type=int, default=2_000)
    p.add_argument("--members", type=int, default=None, help="pool size M (default: 8 for mlp, 4 for fcn/cnn)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-workers", action="store_true", help="skip the 2-process variants")
    args = p.parse_args()
    if args.quick:
        args.audit, args.test, args.epochs, args.rounds = 1_200, 500, 1, 1
        args.members = args.members or 4
    C.setup_threads(args.threads)
    C.header("bench_pool: pool training vs a plain PyTorch loop")
    tmp = Path(tempfile.mkdtemp(prefix="miaudit-bench-pool-"))
    results = {}
    start = time.perf_counter()
    try:
        for name in args.models.split(","):
            results[name] = run_model(name.strip(), args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = C.save_result("bench_pool", {"args": vars(args) | {"out": str(args.out)}, "models": results,
                                        "wall_s": time.perf_counter() - start}, args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
