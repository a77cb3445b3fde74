"""The sweep's comparison table: one row per variant (and per variant × inference-time defence),
its Pareto front, ``sweep.csv`` / ``sweep.md``, and the utility–privacy figure of the same rows.

Rows are built from each finished variant's ``results.json`` and ``timing.json`` alone
(:func:`variant_rows`), so ``miaudit sweep`` writes the tables after every variant and the sweep's
report page (:mod:`miaudit.report.sweep_page`) rebuilds them from the files. ``sweep.csv`` holds
every figure with its 95% interval as lo/hi columns; ``sweep.md`` the readable tables;
``figures/utility_privacy.png`` test accuracy against TPR@1% FPR of each row's strongest attack,
the Pareto front joined by a line.
"""

from __future__ import annotations

import csv
import io as _io
import math
from pathlib import Path

import numpy as np

from miaudit.io import atomic_path, write_text
from miaudit.results import ATTACKERS, Results, strongest_of

#: the FPRs of the table columns
FPR_COLUMNS = (("0.001", "tpr@0.1%"), ("0.01", "tpr@1%"))
#: the utility–privacy figure, relative to the sweep directory
UTILITY_PRIVACY_FIGURE = "figures/utility_privacy.png"


def _attack_cells(r: dict) -> dict:
    ci = r.get("ci95") or {}
    cells = {"auc": r["auc"], "auc_ci": ci.get("auc"), "advantage": r["advantage"], "advantage_ci": ci.get("advantage")}
    for key, col in FPR_COLUMNS:
        cells[col] = r["tpr_at_fpr"].get(key)
        cells[f"{col}_ci"] = (ci.get("tpr_at_fpr") or {}).get(key)
    return cells


def _recipes_label(config: dict) -> str:
    parts = []
    for r in config.get("train", {}).get("recipes", []):
        parts.append(r["name"])
    return "+".join(parts) or "none"


def _strongest(cells: dict[str, dict]) -> str | None:
    return strongest_of({n: (c.get("tpr@1%"), c["auc"]) for n, c in cells.items()})


def variant_rows(name: str, results: Results, timing: dict) -> list[dict]:
    """The table rows of one finished variant: the pool as trained, then one per inference-time defence.

    A defence row reports, per attack, the stronger (by TPR@1% FPR, then AUC) of its
    non-adaptive and adaptive attackers, plus the label-only attacker's attacks.
    """
    train_s = [s for s in timing.get("members_train_s", []) if s is not None]
    dp = results.get("pool", {}).get("dp") or {}
    common = {
        "recipes": _recipes_label(results.get("config", {})),
        "train_s_per_model": float(np.mean(train_s)) if train_s else None,
        "epsilon": dp.get("epsilon_max"),
    }
    util = results.get("utility", {})
    attacks = {a: _attack_cells(r) for a, r in results.get("attacks", {}).items()}
    rows = [{"variant": name, "defence": "", **common, "train_acc": util.get("train_acc"),
             "test_acc": util.get("test_acc"), "attacks": attacks, "strongest": _strongest(attacks)}]
    for key, d in (results.get("defences") or {}).items():
        cells: dict[str, dict] = {}
        for attacker in ATTACKERS:
            for a, r in d.get("attackers", {}).get(attacker, {}).items():
                c = _attack_cells(r) | {"attacker": attacker}
                old = cells.get(a)
                if old is None or (c["tpr@1%"] or 0.0, c["auc"]) > (old["tpr@1%"] or 0.0, old["auc"]):
                    cells[a] = c
        after = d.get("utility", {}).get("after", {})
        rows.append({"variant": f"{name}+{key}", "defence": key, **common, "train_acc": after.get("train_acc"),
                     "test_acc": after.get("test_acc"), "attacks": cells, "strongest": _strongest(cells)})
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (utility, leakage) points no other point beats: higher utility and lower leakage.

    >>> pareto_front([(0.9, 0.05), (0.8, 0.02), (0.7, 0.03), (0.9, 0.04)])
    [False, True, False, True]
    """
    out = []
    for i, (u, l) in enumerate(points):
        dominated = any(
            (u2 >= u and l2 <= l) and (u2 > u or l2 < l) for j, (u2, l2) in enumerate(points) if j != i
        )
        out.append(not dominated and not (math.isnan(u) or math.isnan(l)))
    return out


def utility_leakage(row: dict) -> tuple[float, float]:
    """A row's point on the utility–privacy plane: (test accuracy, TPR@1% of its strongest attack); NaN when missing."""
    s = row.get("strongest")
    tpr = row["attacks"][s].get("tpr@1%") if s else None
    acc = row.get("test_acc")
    return (float("nan") if acc is None else acc, float("nan") if tpr is None else tpr)


# --- outputs --------------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 6) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def write_tables(out: Path, rows: list[dict]) -> None:
    """``sweep.csv`` (every figure, CIs as lo/hi columns) and ``sweep.md`` (the readable tables)."""
    attacks = sorted({a for r in rows for a in r["attacks"]})
    front = pareto_front([utility_leakage(r) for r in rows])
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["variant", "defence", "recipes", "train_acc", "test_acc", "train_s_per_model", "epsilon",
            "strongest_attack", "pareto"]
    for a in attacks:
        for col in ("auc", "advantage", *(c for _, c in FPR_COLUMNS)):
            head += [f"{a}.{col}", f"{a}.{col}_lo", f"{a}.{col}_hi"]
    w.writerow(head)
    for r, on_front in zip(rows, front):
        line = [r["variant"], r["defence"], r["recipes"], _num(r["train_acc"]), _num(r["test_acc"]),
                _num(r["train_s_per_model"], 4), _num(r["epsilon"], 4), r["strongest"] or "", int(on_front)]
        for a in attacks:
            c = r["attacks"].get(a)
            for col in ("auc", "advantage", *(c_ for _, c_ in FPR_COLUMNS)):
                if c is None:
                    line += ["", "", ""]
                    continue
                ci = c.get(f"{col}_ci") or [None, None]
                line += [_num(c.get(col)), _num(ci[0]), _num(ci[1])]
        w.writerow(line)
    write_text(out / "sweep.csv", buf.getvalue())
    write_text(out / "sweep.md", format_markdown(rows, front, attacks))


def _pct(x: float | None, ci: list | None = None) -> str:
    if x is None:
        return "–"
    s = f"{100 * x:.1f}"
    if ci and None not in ci:
        s += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return s


def format_markdown(rows: list[dict], front: list[bool], attacks: list[str]) -> str:
    """``sweep.md``: the table of every row's strongest attack, then one table per attack."""
    lines = [
        "# Utility–privacy sweep",
        "",
        "Percentages; [95% bootstrap CI]. *Strongest attack*: highest TPR at 1% FPR in the row. "
        "Rows `variant+defence` evaluate an inference-time defence on that variant's pool and report, per "
        "attack, the stronger of its non-adaptive and adaptive attackers. ✓: on the Pareto front "
        "(no row has higher test accuracy and lower TPR@1%).",
        "",
        "| variant | train acc | test acc | train s/model | ε | strongest attack | AUC | adv. | TPR@0.1% | TPR@1% | Pareto |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|:-:|",
    ]
    for r, on in zip(rows, front):
        s = r["strongest"]
        c = r["attacks"].get(s, {}) if s else {}
        eps = "–" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        secs = "–" if r["train_s_per_model"] is None else f"{r['train_s_per_model']:.1f}"
        lines.append(
            f"| {r['variant']} | {_pct(r['train_acc'])} | {_pct(r['test_acc'])} | {secs} | {eps} | {s or '–'} | "
            f"{_pct(c.get('auc'), c.get('auc_ci'))} | {_pct(c.get('advantage'))} | {_pct(c.get('tpr@0.1%'))} | "
            f"{_pct(c.get('tpr@1%'), c.get('tpr@1%_ci'))} | {'✓' if on else ''} |"
        )
    for a in attacks:
        lines += ["", f"## {a}", "", "| variant | AUC | adv. | TPR@0.1% | TPR@1% |", "|---|---:|---:|---:|---:|"]
        for r in rows:
            c = r["attacks"].get(a)
            if c is None:
                continue
            who = f" ({c['attacker']})" if c.get("attacker") else ""
            lines.append(
                f"| {r['variant']}{who} | {_pct(c['auc'], c.get('auc_ci'))} | {_pct(c['advantage'], c.get('advantage_ci'))} | "
                f"{_pct(c.get('tpr@0.1%'), c.get('tpr@0.1%_ci'))} | {_pct(c.get('tpr@1%'), c.get('tpr@1%_ci'))} |"
            )
    return "\n".join(lines) + "\n"


def write_utility_privacy_figure(path: Path, rows: list[dict]) -> Path:
    """Test accuracy against TPR@1% FPR of each row's strongest attack; Pareto front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [utility_leakage(r) for r in rows]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(7.0, 5.2), dpi=120)
    try:
        ax.axvline(0.01, color="0.6", lw=1, ls=":", label="chance (TPR = FPR = 1%)")
        for r, (acc, tpr), on in zip(rows, pts, front):
            if math.isnan(acc) or math.isnan(tpr):
                continue
            s = r["strongest"]
            ci = r["attacks"][s].get("tpr@1%_ci") if s else None
            xerr = None if not ci or None in ci else [[max(0.0, tpr - ci[0])], [max(0.0, ci[1] - tpr)]]
            ax.errorbar(tpr, acc, xerr=xerr, fmt="o" if not r["defence"] else "s", ms=6,
                        color="C3" if on else "C0", ecolor="0.7", capsize=2)
            ax.annotate(r["variant"], (tpr, acc), textcoords="offset points", xytext=(5, 4), fontsize=7)
        fr = sorted((p for p, on in zip(pts, front) if on), key=lambda p: p[1])
        if len(fr) > 1:
            ax.plot([p[1] for p in fr], [p[0] for p in fr], color="C3", lw=1, ls="--", label="Pareto front")
        ax.set_xlabel("TPR at 1% FPR, strongest attack (lower = more private)")
        ax.set_ylabel("test accuracy (higher = more useful)")
        ax.set_title("Utility–privacy trade-off of each defence")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
