"""Benchmark 3: the cost of DP-SGD: epoch time with Opacus ÷ a non-private epoch, FCN and small CNN.

Both go through ``miaudit.training.train_model``; the private one with the ``dp-sgd`` recipe
(Opacus: Poisson sampling, per-sample clipping at C = 1, noise σ = 1, ghost clipping by
default), the other with no recipe. One epoch each, alternating, in one process. Target: <= 4x
on the FCN (DESIGN.md measured ghost clipping at ~4x and Opacus's default ``hooks`` mode at ~78x;
``--hooks`` adds that mode, slow).

    python benchmarks/bench_dp.py
    python benchmarks/bench_dp.py --hooks     # also the per-sample-gradient mode (minutes)
    python benchmarks/bench_dp.py --quick
"""

from __future__ import annotations

import warnings

import _common as C
import numpy as np
import torch


def task(model: str, n: int):
    from miaudit.pipeline.configure import load_config
    from miaudit.pipeline.data import split_data

    if model == "fcn":
        over = ["model.name=fcn", f"data.params.n_records={n + 10}"]
    else:
        over = ["data.name=fashion-mnist", "model.name=cnn"]
    cfg = load_config(None, [*over, f"data.splits.audit={n}", "data.splits.population=0", "data.splits.validation=0",
                             "data.splits.test=10", "train.epochs=1"])
    dataset, splits = split_data(cfg)
    x = torch.from_numpy(np.ascontiguousarray(dataset.x[splits.audit]))
    y = torch.from_numpy(dataset.y[splits.audit].astype(np.int64))
    return cfg, dataset, x, y


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--fcn-records", type=int, default=10_000)
    p.add_argument("--cnn-records", type=int, default=5_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--hooks", action="store_true", help="also Opacus's default per-sample-gradient mode")
    p.add_argument("--models", default="fcn,cnn")
    args = p.parse_args()
    if args.quick:
        args.fcn_records, args.cnn_records, args.rounds = 1_024, 512, 1
    C.setup_threads(args.threads)
    C.header("bench_dp: DP-SGD (Opacus) epoch ÷ non-private epoch")
    warnings.filterwarnings("ignore")

    from miaudit.pipeline.configure import load_config
    from miaudit.models import build_model
    from miaudit.training import train_model
    from miaudit.training.recipes import RECIPES, build_recipes

    if "dp-sgd" not in RECIPES:
        raise SystemExit("the dp-sgd recipe is not registered in miaudit.training.recipes")
    results = {}
    for name in args.models.split(","):
        n = args.fcn_records if name == "fcn" else args.cnn_records
        cfg, dataset, x, y = task(name, n)
        modes = ["ghost", "hooks"] if args.hooks else ["ghost"]
        cfgs = {"plain": cfg.train}
        for mode in modes:
            dp = load_config(None, [
                f"train.recipes=[{{name: dp-sgd, params: {{noise_multiplier: 1.0, max_grad_norm: 1.0, "
                f"grad_sample_mode: {mode}}}}}]", "train.epochs=1",
            ])
            cfgs[f"dp-{mode}"] = dp.train

        def new_model():  # noqa: ANN202
            torch.manual_seed(0)
            return build_model(cfg.model.name, cfg.model.params, dataset.input_shape, dataset.n_classes)

        def epoch(train_cfg):  # noqa: ANN001, ANN202
            return lambda: train_model(new_model(), x, y, train_cfg, seed=0, recipes=build_recipes(train_cfg.recipes))

        for train_cfg in cfgs.values():  # warm-up: imports, Opacus hooks, kernels
            train_model(new_model(), x[:256], y[:256], train_cfg, seed=0, recipes=build_recipes(train_cfg.recipes))
        times = C.paired_rounds({k: epoch(v) for k, v in cfgs.items()}, args.rounds, warmup=False)
        ratios = {k: C.ratio(times[k], times["plain"]) for k in cfgs if k != "plain"}
        n_params = sum(q.numel() for q in new_model().parameters())
        print(f"-- {name}: {n_params:,} params, {len(y):,} records/epoch, batch {cfg.train.batch_size}")
        C.table([[k, f"{C.med(times[k]):.2f}", f"{len(y) / C.med(times[k]):.0f}",
                  "1.00x" if k == "plain" else f"{ratios[k]:.2f}x"] for k in cfgs],
                ["variant", "s/epoch", "records/s", "÷ plain"])
        target = " (target <= 4x)" if name == "fcn" else ""
        print(f"   RATIO {name}: dp-ghost / plain = {ratios['dp-ghost']:.2f}x{target}")
        results[name] = {"n_params": n_params, "records": len(y), "seconds": times, "ratio_to_plain": ratios}
    path = C.save_result("bench_dp", {"args": vars(args) | {"out": str(args.out)}, "models": results},
                         args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
