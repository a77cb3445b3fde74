"""Make the example's files: a model trained with a plain PyTorch loop, its training data and held-out data.

    python train_target.py          # writes train.csv, holdout.csv and target.safetensors here

Stands in for what you already have: your own model, the records it was trained on, and records
it never saw. The data are synthetic (miaudit's Purchase-like generator, small), written as CSV.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from miaudit.data import load_dataset
from my_model import MyNet

HERE = Path(__file__).resolve().parent


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{i}" for i in range(x.shape[1])] + ["label"])
        for row, label in zip(x, y):
            w.writerow([f"{v:g}" for v in row] + [int(label)])


def main() -> None:
    data = load_dataset("synthetic-purchase", {"n_records": 4000, "n_features": 100, "n_classes": 10,
                                               "n_parents": 4}, None, seed=0)
    rows = np.random.default_rng(0).permutation(len(data))
    train, holdout = rows[:1000], rows[1000:4000]
    write_csv(HERE / "train.csv", data.x[train], data.y[train])
    write_csv(HERE / "holdout.csv", data.x[holdout], data.y[holdout])

    # your training loop: nothing from miaudit here
    torch.manual_seed(0)
    model = MyNet(data.x.shape[1], 10, width=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(data.x[train]), torch.from_numpy(data.y[train])
    for epoch in range(30):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
        xh, yh = torch.from_numpy(data.x[holdout]), torch.from_numpy(data.y[holdout])
        test = (model(xh).argmax(1) == yh).float().mean().item()
    print(f"target: train accuracy {acc:.1%}, held-out accuracy {test:.1%}")
    save_file(model.state_dict(), str(HERE / "target.safetensors"))


if __name__ == "__main__":
    main()
