"""The report page of a sweep: the utility–privacy table, its verdict, each variant's defences.

Built from the sweep directory's files alone (``sweep.resolved.yaml`` for the variants' order,
each ``variants/<name>/`` run directory), with the table rows of :mod:`miaudit.report.sweep_table`.
The verdict compares the undefended baseline (the first variant without recipes or defence) with
the most private variant on the Pareto front, at the headline FPR.
"""

from __future__ import annotations

import math
from pathlib import Path

from miaudit.errors import DataError
from miaudit.report import format as fmt
from miaudit.report.load import SWEEP_VARIANTS, figure, load_run, rebuild_path, sweep_variants
from miaudit.report.run_page import cell, defence_tables, setup_section, subtitle
from miaudit.report.sweep_table import (
    FPR_COLUMNS,
    UTILITY_PRIVACY_FIGURE,
    pareto_front,
    utility_leakage,
    variant_rows,
)
from miaudit.report.verdict import LEVEL_TITLES, level_of, level_scale
from miaudit.results import HEADLINE_FPR, HEADLINE_KEY
from miaudit.rundir import RunDir


def build_sweep_context(sweep_dir: Path | str, rows: list[dict] | None = None) -> dict:
    """The report context of a sweep directory: its table, the utility–privacy figure, each defence's attackers."""
    root = Path(sweep_dir)
    names = sweep_variants(root)
    variants = root / SWEEP_VARIANTS
    runs = {n: load_run(variants / n) for n in names if RunDir(variants / n).results.is_file()}
    if not names or not runs:
        raise DataError(f"{root}: no finished variant (variants/*/results.json); is it a `miaudit sweep` directory?")
    if rows is None:
        rows = [row for n in names if n in runs for row in variant_rows(n, runs[n]["results"], runs[n]["timing"])]
    tpr_col = dict(FPR_COLUMNS)[HEADLINE_KEY]
    tpr01_col = dict(FPR_COLUMNS)["0.001"]
    front = pareto_front([utility_leakage(r) for r in rows])
    table = []
    for r, on in zip(rows, front):
        s = r.get("strongest")
        c = r["attacks"].get(s, {}) if s else {}
        variant = r["variant"] if not r.get("defence") else r["variant"][: -len(r["defence"]) - 1]
        table.append({
            "variant": r["variant"],
            "defence": r.get("defence") or "",
            "recipes": r.get("recipes", ""),
            "train_acc": fmt.pct(r.get("train_acc")),
            "test_acc": fmt.pct(r.get("test_acc")),
            "epsilon": "–" if r.get("epsilon") is None else f"{r['epsilon']:.2f}",
            "train_s": "–" if r.get("train_s_per_model") is None else fmt.duration(r["train_s_per_model"]),
            "strongest": s or "–",
            "attacker": c.get("attacker") or "",
            "auc": cell(c.get("auc"), c.get("auc_ci")),
            "tpr01": cell(c.get(tpr01_col), c.get(f"{tpr01_col}_ci")),
            "tpr1": cell(c.get(tpr_col), c.get(f"{tpr_col}_ci")),
            "level": level_of(c.get(tpr_col), HEADLINE_FPR) if c.get(tpr_col) is not None else None,
            "pareto": bool(on),
            "report": RunDir(variants / variant).report_html.relative_to(root).as_posix()
            if not r.get("defence") and RunDir(variants / variant).report_html.is_file() else None,
            "_xy": utility_leakage(r),
        })
    baseline = next((t for t in table if t["recipes"] == "none" and not t["defence"]), table[0])
    on_front = [t for t in table if t["pareto"]]
    best = min(on_front, key=lambda t: (t["_xy"][1], -t["_xy"][0])) if on_front else None
    verdict = None
    b_tpr, b_acc = baseline["_xy"][1], baseline["_xy"][0]
    if not math.isnan(b_tpr):
        verdict = {
            "level": baseline["level"], "title": LEVEL_TITLES[baseline["level"] or "low"],
            "baseline": baseline["variant"], "tpr": baseline["tpr1"]["text"], "test_acc": baseline["test_acc"],
            "n_rows": len(table), "front": [t["variant"] for t in on_front],
            "best": None, "scale": level_scale(HEADLINE_FPR), "fpr": fmt.fpr_label(HEADLINE_FPR),
        }
        if best is not None and best is not baseline and best["_xy"][1] < b_tpr:
            verdict["best"] = {
                "variant": best["variant"], "tpr": best["tpr1"]["text"], "test_acc": best["test_acc"],
                "cost": fmt.points(best["_xy"][0] - b_acc) if not math.isnan(best["_xy"][0]) and not math.isnan(b_acc) else "n/a",
                "level": best["level"], "title": LEVEL_TITLES[best["level"] or "low"],
            }
    for t in table:
        t.pop("_xy")
    first = runs[next(n for n in names if n in runs)]
    defences = [{"variant": n, "tables": defence_tables(runs[n]["results"], HEADLINE_KEY)}
                for n in names if n in runs and runs[n]["results"].get("defences")]
    sections = [("verdict", "Verdict"), ("setup", "Setup"), ("defences", "Defences (sweep)")]
    total = sum(r["timing"].get("total_s") or 0.0 for r in runs.values())
    setup = setup_section(first)
    setup["rows"] = [row for row in setup["rows"] if row["key"] not in (
        "Run directory", "Training-time defences (recipes)", "Inference-time defences", "Run time (last invocation)",
        "Training time per model")]
    setup["rows"][:0] = [{"key": "Sweep directory", "value": root.resolve().name},
                         {"key": "Variants", "value": f"{len(names)} ({len(runs)} finished): {', '.join(names)}"}]
    setup["rows"].append({"key": "Run time (last invocations, all variants)", "value": fmt.duration(total)})
    return {
        "kind": "sweep",
        "title": f"Utility–privacy sweep: {first['results'].get('data', {}).get('name', 'model')}",
        "run_name": root.resolve().name,
        "run_path": rebuild_path(root),
        "subtitle": f"{len(names)} variants · base: " + subtitle(first["results"], first["config"]),
        "version": (first["results"].get("versions") or {}).get("miaudit", ""),
        "toc": [{"id": i, "title": t, "n": n} for n, (i, t) in enumerate(sections, 1)],
        "num": {i: n for n, (i, _) in enumerate(sections, 1)},
        "verdict": None,
        "setup": setup,
        "attacks": None,
        "vulnerability": None,
        "defences": None,
        "defence_fpr": fmt.fpr_label(HEADLINE_FPR),
        "min_nonmembers": None,
        "sweep": {
            "verdict": verdict,
            "table": table,
            "figure": figure(root, UTILITY_PRIVACY_FIGURE),
            "defences": defences,
            "missing": [n for n in names if n not in runs],
        },
    }

