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
from miaudit.report.figures import PLOT_METADATA_KEY

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


#: attack families and the colour map whose shades tell their members apart (threshold attacks need no
#: reference models and are dashed); an attack of a plugin falls in "other"
FAMILIES: tuple[tuple[str, str, str], ...] = (
    # (family, colour map, how its members are named)
    ("threshold", "Greys", "loss, confidence, entropy, modified-entropy"),
    ("calibrated", "Purples", "calibrated-*"),
    ("shokri", "YlOrBr", "shokri*"),
    ("LiRA", "Blues", "lira-*"),
    ("RMIA", "Reds", "rmia-*"),
    ("label-only", "Greens", "label-only-*"),
    ("other", "copper", "anything else"),
)
_THRESHOLD = {"loss", "confidence", "entropy", "modified-entropy"}
#: legend text size (points): readable at the page's width (the figure is shown about 1:1)
LEGEND_FONTSIZE = 8.5


def attack_family(name: str) -> str:
    """The family of an attack, from its registered name.

    >>> [attack_family(n) for n in ("loss", "calibrated-loss", "lira-online-fixed", "rmia-offline", "my-attack")]
    ['threshold', 'calibrated', 'LiRA', 'RMIA', 'other']
    """
    if name in _THRESHOLD:
        return "threshold"
    for prefix, family in (("calibrated", "calibrated"), ("shokri", "shokri"), ("lira", "LiRA"), ("rmia", "RMIA"),
                           ("label-only", "label-only")):
        if name.startswith(prefix):
            return family
    return "other"


def family_colours(names: list[str]) -> dict[str, str]:
    """A hex colour per attack: one colour map per family, members spread over its darker shades."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmaps = {f: c for f, c, _ in FAMILIES}
    by_family: dict[str, list[str]] = {}
    for n in names:
        by_family.setdefault(attack_family(n), []).append(n)
    out = {}
    for family, members in by_family.items():
        cmap = matplotlib.colormaps[cmaps[family]]
        k = len(members)
        # light ends of sequential maps are invisible on white: use 0.45..0.95
        shades = [0.85] if k == 1 else list(np.linspace(0.95, 0.45, k))
        for n, v in zip(sorted(members), shades):
            out[n] = to_hex(cmap(float(v)))
    return out


def unreliable_below(results: dict[str, dict] | None, curves: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> float | None:
    """The FPR under which a target's TPR is backed by fewer than 10/FPR non-members (metrics' rule)."""
    from miaudit.metrics import RELIABILITY_FACTOR

    counts = [t["n_nonmembers"] for r in (results or {}).values() for t in r.get("per_target", []) if t.get("n_nonmembers")]
    if not counts:  # from the curves: a target's smallest FPR step is 1 / its non-members
        steps = [float(np.diff(np.unique(f))[np.diff(np.unique(f)) > 0].min()) for runs in curves.values()
                 for f, _ in runs if len(np.unique(f)) > 1]
        counts = [round(1.0 / s) for s in steps]
    return RELIABILITY_FACTOR / min(counts) if counts else None


def write_roc_figure(
    path: Path | str,
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    results: dict[str, dict] | None = None,
    *,
    title: str = "Membership inference ROC (mean over targets)",
) -> Path:
    """Draw every attack's target-averaged ROC on log-log axes and write a PNG atomically.

    Colours follow the attack family (:data:`FAMILIES`), the legend sits beside the axes grouped
    by family, and the FPR range where TPR is unreliable (fewer than 10/FPR non-members) is
    shaded. What was drawn (series, colours, labels, the shaded range) is recorded as JSON in
    the PNG's ``miaudit:plot`` text chunk.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = results or {}
    grid = _grid(curves)
    colours = family_colours(list(curves))
    family_rank = {f: i for i, (f, _, _) in enumerate(FAMILIES)}
    # grouped by family (in FAMILIES order), strongest first inside a family
    order = sorted(curves, key=lambda n: (family_rank[attack_family(n)],
                                          -results.get(n, {}).get("tpr_at_fpr", {}).get("0.001", 0.0), n))
    fig, ax = plt.subplots(figsize=(10.0, 5.6), dpi=120)
    drawn = []
    try:
        lo_y = max(grid[0], 1e-5)
        below = unreliable_below(results, curves)
        if below is not None and below > grid[0]:
            ax.axvspan(grid[0], min(below, 1.0), color="0.88", zorder=0, lw=0,
                       label=f"TPR unreliable (FPR < {below:.2g}: < 10/FPR non-members)")
        ax.plot(grid, grid, color="0.45", lw=1, ls=":", label="chance (TPR = FPR)")
        for name in order:
            tpr = average_roc(curves[name], grid)
            r = results.get(name, {})
            label = name
            if "auc" in r:
                label += f"  AUC {r['auc']:.3f}"
            if "0.001" in r.get("tpr_at_fpr", {}):
                label += f", TPR@0.1% {100 * r['tpr_at_fpr']['0.001']:.1f}%"
            ls = "--" if r.get("knowledge") in _DASHED else "-"
            ax.step(grid, np.maximum(tpr, 1e-7), where="post", lw=1.5, ls=ls, color=colours[name], label=label)
            drawn.append({"name": name, "family": attack_family(name), "colour": colours[name], "label": label,
                          "linestyle": ls})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(grid[0], 1.0)
        ax.set_ylim(lo_y, 1.0)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.3)
        legend = ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                           title="colour: attack family; dashed: no reference models", title_fontsize=LEGEND_FONTSIZE)
        legend._legend_box.align = "left"
        fig.tight_layout()
        meta = {"series": drawn, "unreliable_below": below, "legend_fontsize": LEGEND_FONTSIZE,
                "legend_labels": [t.get_text() for t in legend.get_texts()]}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={PLOT_METADATA_KEY: json.dumps(meta)})
    finally:
        plt.close(fig)
    return Path(path)

