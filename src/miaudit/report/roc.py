"""The log-log ROC figure of every attack on one plot (``figures/roc.png``).

Each curve is the target average of TPR at FPR α over a log-spaced grid of α, where TPR at α
is the metrics' own rule (highest TPR among thresholds with FPR ≤ α, no upward
interpolation), so the curve and the table agree. The grid starts at 1/(non-members per
target): below that a single non-member is already too many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.io import atomic_path

#: curves drawn with a dashed line: attacks without reference models
_DASHED = {"none"}


def average_roc(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """Mean over targets of TPR at each FPR of ``grid`` (step function, no interpolation)."""
    rows = []
    for fpr, tpr in curves:  # fpr and tpr are non-decreasing along the ROC
        k = np.searchsorted(fpr, grid + 1e-12, side="right")
        rows.append(np.where(k > 0, tpr[np.maximum(k - 1, 0)], 0.0))
    return np.mean(rows, axis=0)


def _grid(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    steps = [np.diff(np.unique(fpr)) for runs in curves.values() for fpr, _ in runs]
    smallest = min((float(s[s > 0].min()) for s in steps if (s > 0).any()), default=1e-4)
    lo = max(smallest, 1e-6)
    return np.unique(np.concatenate([np.geomspace(lo, 1.0, 300), [1.0]]))


def write_roc_figure(
    path: Path | str,
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    results: dict[str, dict] | None = None,
    *,
    title: str = "Membership inference ROC (mean over targets)",
) -> Path:
    """Draw every attack's target-averaged ROC on log-log axes and write a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = _grid(curves)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    try:
        ax.plot(grid, grid, color="0.6", lw=1, ls=":", label="chance")
        order = sorted(curves, key=lambda n: -(results or {}).get(n, {}).get("tpr_at_fpr", {}).get("0.001", 0.0))
        cmap = plt.get_cmap("tab20")
        for i, name in enumerate(order):
            tpr = average_roc(curves[name], grid)
            r = (results or {}).get(name, {})
            label = name
            if "auc" in r:
                label += f"  AUC {r['auc']:.3f}"
            if "0.001" in r.get("tpr_at_fpr", {}):
                label += f", TPR@0.1% {100 * r['tpr_at_fpr']['0.001']:.1f}%"
            ls = "--" if r.get("knowledge") in _DASHED else "-"
            ax.step(grid, np.maximum(tpr, 1e-7), where="post", lw=1.3, ls=ls, color=cmap(i % 20), label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(grid[0], 1.0)
        ax.set_ylim(max(grid[0], 1e-5), 1.0)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right", frameon=False)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
