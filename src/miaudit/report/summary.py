"""The plain-text summary table printed by the CLI and written to ``summary.txt``."""

from __future__ import annotations

from miaudit.report.format import pct, pct_ci  # formats live in report.format; re-exported here
from miaudit.results import HEADLINE_KEY, Results, strongest

__all__ = ["format_summary", "pct", "pct_ci", "records_at_risk"]


def records_at_risk(attack: dict, key: str = HEADLINE_KEY) -> dict | None:
    """Training records per target model an attack flags at FPR ``key``, split into chance and excess.

    A random guess flags FPR × members of them, so only ``excess`` = (TPR − FPR) × members are
    records the attack identifies beyond chance; ``excess_ci`` is the bootstrap interval of the
    TPR moved the same way. None when the run lacks the TPR or the member counts.

    FPR × members is the valid chance count here for every attack, LiRA online included: it is
    one target's flags, whose members and non-members score alike when nothing leaks. The
    permutation control of the vulnerable set (``vulnerability.scores``) is for a different count,
    records flagged across their IN targets, whose flags correlate; it is not subtracted here.

    >>> r = records_at_risk({"tpr_at_fpr": {"0.01": 0.0771}, "per_target": [{"n_members": 10000}]})
    >>> round(r["flagged"]), round(r["chance"]), round(r["excess"])
    (771, 100, 671)
    """
    tpr = attack.get("tpr_at_fpr", {}).get(key)
    members = [t["n_members"] for t in attack.get("per_target", []) if t.get("n_members") is not None]
    if tpr is None or not members:
        return None
    n, alpha = sum(members) / len(members), float(key)
    ci = (attack.get("ci95") or {}).get("tpr_at_fpr", {}).get(key)
    excess_ci = [max(0.0, (ci[0] - alpha) * n), max(0.0, (ci[1] - alpha) * n)] if ci and None not in ci else None
    return {"n_members": n, "flagged": tpr * n, "chance": alpha * n, "excess": max(0.0, (tpr - alpha) * n),
            "excess_ci": excess_ci}


def _at_risk_line(attacks: dict) -> str | None:
    """One line: records at risk beyond chance for the strongest attack at 1% FPR, chance beside it."""
    from miaudit.report.format import count

    best = strongest(attacks, HEADLINE_KEY) if any(HEADLINE_KEY in r.get("tpr_at_fpr", {}) for r in attacks.values()) else None
    risk = records_at_risk(attacks[best]) if best else None
    if risk is None:
        return None
    ci = risk["excess_ci"]
    pm = f" ± {count((ci[1] - ci[0]) / 2)}" if ci else ""
    within = " - within chance" if risk["excess"] <= 0 or (ci and ci[0] <= 0) else ""
    return (f"records at risk beyond chance: ≈ {count(risk['excess'])}{pm} of a model's {count(risk['n_members'])} "
            f"training records ({best} flags ≈ {count(risk['flagged'])} at 1% FPR; a random guess ≈ "
            f"{count(risk['chance'])}){within}")


def format_summary(results: Results) -> str:
    """Utility and, per attack, AUC, advantage and TPR at 0.1% / 1% FPR with CIs (unreliable figures marked *)."""
    lines = []
    data = results.get("data", {})
    pool = results.get("pool", {})
    util = results.get("utility", {})
    if results.get("target"):  # one model trained outside miaudit: its own lines instead of the pool's
        lines += format_target(results["target"])
        data = util = {}
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
        rows = [("attack", "knows", "AUC", "adv", "TPR@0.1%", "TPR@1%")]
        any_unreliable = any_ci = False
        for name, r in attacks.items():
            ci = r.get("ci95", {})
            any_ci |= bool(ci)
            cells = [name, r.get("knowledge", ""), pct_ci(r["auc"], ci.get("auc")), pct_ci(r["advantage"], ci.get("advantage"))]
            for key in ("0.001", "0.01"):
                v = r["tpr_at_fpr"].get(key)
                mark = "" if r.get("reliable", {}).get(key, True) else "*"
                any_unreliable |= bool(mark)
                cells.append(pct_ci(v, ci.get("tpr_at_fpr", {}).get(key)) + mark)
            rows.append(tuple(cells))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines.append("")
        for j, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i <= 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        if any_ci:
            n_boot = results.get("config", {}).get("audit", {}).get("bootstrap")
            lines.append(f"± half-width of the 95% bootstrap interval{f' ({n_boot} resamples)' if n_boot else ''}; "
                         "knows: none / offline (OUT references) / online (IN and OUT references)")
        if any_unreliable:
            lines.append("* backed by fewer than 10/FPR non-members per target: unreliable")
        risk_line = _at_risk_line(attacks)
        if risk_line:
            lines.append(risk_line)
    for name, why in results.get("skipped_attacks", {}).items():
        lines.append(f"skipped {name}: {why}")
    for msg in results.get("warnings", []):
        # skips and the reliability flag are said above; the rest (e.g. too few references) here
        if "skipped:" in msg or "fewer than 10/FPR" in msg:
            continue
        lines.append(f"note: {msg.removeprefix('attack ')}")
    if results.get("vulnerability"):
        from miaudit.vulnerability.report import format_vulnerability

        lines += format_vulnerability(results["vulnerability"])
    return "\n".join(lines) + "\n"


def format_target(target: dict) -> list[str]:
    """The one-model lines of a target audit (``miaudit.pipeline.target``): the headline with its chance
    control, the target's accuracy beside the references', and plain warnings when they differ."""
    acc = target["accuracy"]
    mem, non = target["members"], target["non_members"]
    lines = [target["headline"],
             f"audited: {mem['n_audited']} of {mem['n_records']} members, {non['n_audited']} of {non['n_records']} "
             f"non-members ({non['duplicates_dropped']} duplicates of members dropped)"]
    line = f"your model: train acc {pct(acc['target'].get('train_acc'))}, test acc {pct(acc['target'].get('test_acc'))}"
    if "references" in acc:
        r = acc["references"]
        line += (f"; {target['n_references']} references ({target['references']}): train acc "
                 f"{pct(r.get('train_acc'))}, test acc {pct(r.get('test_acc'))}")
    else:
        line += "; no references (references: none)"
    lines.append(line)
    lines += [f"warning: {w}" for w in target.get("accuracy_warnings", [])]
    lines += [f"note: {n}" for n in target.get("notes", [])]
    return lines


def target_headline(found: dict) -> str:
    """The one-model sentence: "N of your M audited training records are identifiable at 1% FPR", and chance."""
    if not found:
        return "no attack ran on the target"
    n, m, a = found["n_identifiable"], found["n_members"], found["fpr"]
    text = (f"{n} of your {m} audited training records are identifiable at {a:.0%} FPR ({found['attack']}); "
            f"an attack unrelated to membership would flag about {found['chance_expected']:.0f}")
    if found["above_chance"] is None:
        return text + " (no bootstrap: audit.bootstrap = 0)"
    lo, hi = found["tpr_ci95"]
    verdict = "more than chance explains" if found["above_chance"] else "not distinguishable from chance"
    return text + f": {verdict} (TPR 95% interval {lo:.1%}–{hi:.1%} vs {a:.0%})"
