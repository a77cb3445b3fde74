"""Benchmark: the cost of auditing one model trained outside miaudit (``target:``), by part.

A target MLP is trained here by a plain PyTorch loop on synthetic Purchase-like members, then
audited with each ``references`` mode. Printed per mode, from the run's ``timing.json``:

- reference training  (stage ``training``: the references through the pool's executors)
- reference queries   (stage ``signals``: every reference on audited, population, test records)
- target queries      (stage ``querying``: the target on the same records)
- attacks             (stage ``attacks``; qmia's share beside it: its regressor is the one fit)

    python benchmarks/bench_target.py
    python benchmarks/bench_target.py --quick
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import _common as C
import numpy as np


def make_files(d: Path, n_members: int, n_non: int, features: int, classes: int, epochs: int) -> Path:
    import torch

    from miaudit.data import load_dataset
    from miaudit.io import save_weights
    from miaudit.models import build_model

    ds = load_dataset("synthetic-purchase", {"n_records": n_members + n_non, "n_features": features,
                                             "n_classes": classes, "n_parents": 4}, None, 0)
    rows = np.random.default_rng(0).permutation(len(ds))
    np.savez(d / "members.npz", x=ds.x[rows[:n_members]], y=ds.y[rows[:n_members]])
    np.savez(d / "non.npz", x=ds.x[rows[n_members:]], y=ds.y[rows[n_members:]])
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [128]}, (features,), classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(ds.x[rows[:n_members]]), torch.from_numpy(ds.y[rows[:n_members]])
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    save_weights(d / "target.safetensors", model.state_dict())
    return d


def main() -> None:
    ap = C.parser(__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--non-members", type=int, default=15000)
    ap.add_argument("--refs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()  # --quick: 1,000 members, 4 references, 5 epochs
    C.setup_threads(args.threads)
    if args.quick:
        args.members, args.non_members, args.refs, args.epochs = 1000, 3000, 4, 5

    from miaudit.pipeline.configure import load_config
    from miaudit.pipeline.run import run_audit

    features, classes = 600, 100
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = make_files(Path(tmp), args.members, args.non_members, features, classes, args.epochs)
        n_audit = 2 * args.members
        base = ["model.name=mlp", "model.params.hidden=[128]", f"train.epochs={args.epochs}", "train.batch_size=64",
                f"pool.n_models={args.refs}", "analysis.vulnerability=false",
                f"data.splits.audit={n_audit}", "data.splits.population=5000", "data.splits.validation=0",
                "data.splits.test=2000",
                f"target.weights={d / 'target.safetensors'}",
                "target.members.name=npz", f"target.members.params.path={d / 'members.npz'}",
                f"target.members.params.n_classes={classes}",
                "target.non_members.name=npz", f"target.non_members.params.path={d / 'non.npz'}",
                f"target.non_members.params.n_classes={classes}"]
        for mode in ("none", "offline", "online"):
            out = Path(tmp) / f"run-{mode}"
            start = time.perf_counter()
            res = run_audit(load_config(None, [*base, f"target.references={mode}"]), out)
            wall = time.perf_counter() - start
            timing = json.loads((out / "timing.json").read_text())
            st = timing["stages_s"]
            row = {
                "reference_training_s": st.get("training", 0.0),
                "reference_queries_s": st.get("signals", 0.0),
                "target_queries_s": st.get("querying", 0.0),
                "attacks_s": st.get("attacks", 0.0),
                "qmia_s": timing["attacks_s"].get("qmia"),
                "data_s": st.get("data", 0.0),
                "report_s": st.get("report", 0.0),
                "total_s": wall,
                "best": res["target"]["identifiable"]["attack"],
                "tpr_at_1pct": res["attacks"][res["target"]["identifiable"]["attack"]]["tpr_at_fpr"]["0.01"],
            }
            report["modes"][mode] = row
            print(f"references={mode:7s}  train refs {row['reference_training_s']:7.1f} s  "
                  f"query refs {row['reference_queries_s']:5.1f} s  query target {row['target_queries_s']:5.2f} s  "
                  f"attacks {row['attacks_s']:5.1f} s (qmia {row['qmia_s'] or 0:.1f} s)  total {wall:6.1f} s  "
                  f"best {row['best']} TPR@1% {row['tpr_at_1pct']:.1%}", flush=True)
    print(f"written {C.save_result('bench_target', report, args.out, quick=args.quick)}")


if __name__ == "__main__":
    main()
