"""The plain-text summary table printed by the CLI and written to ``summary.txt``."""

from __future__ import annotations


def pct(x: float | None) -> str:
    """Percent with one decimal, the format used everywhere in reports."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def format_summary(results: dict) -> str:
    """Utility and, per attack, AUC, advantage and TPR at 0.1% / 1% FPR (unreliable figures marked *)."""
    lines = []
    data = results.get("data", {})
    pool = results.get("pool", {})
    util = results.get("utility", {})
    if data:
        lines.append(
            f"dataset {data.get('name')}: {data.get('n_records')} records, {data.get('n_classes')} classes; "
            f"audit pool {data.get('splits', {}).get('audit')}, pool of {pool.get('n_models')} models, "
            f"{len(pool.get('targets', []))} target(s)"
        )
    if util:
        parts = [f"train acc {pct(util.get('train_acc'))}"]
        if "test_acc" in util:
            parts.append(f"test acc {pct(util.get('test_acc'))}")
        lines.append("utility: " + ", ".join(parts) + " (mean over targets)")
    attacks = results.get("attacks", {})
    if attacks:
        rows = [("attack", "AUC", "adv", "TPR@0.1%", "TPR@1%")]
        any_unreliable = False
        for name, r in attacks.items():
            cells = [name, pct(r["auc"]), pct(r["advantage"])]
            for key in ("0.001", "0.01"):
                v = r["tpr_at_fpr"].get(key)
                mark = "" if r.get("reliable", {}).get(key, True) else "*"
                any_unreliable |= bool(mark)
                cells.append(pct(v) + mark)
            rows.append(tuple(cells))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines.append("")
        for j, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        if any_unreliable:
            lines.append("* backed by fewer than 10/FPR non-members per target: unreliable")
    for name, why in results.get("skipped_attacks", {}).items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines) + "\n"
