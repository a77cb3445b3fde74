"""The sections of one run's report page: verdict, setup, attacks, vulnerable records, defences.

:func:`build_context` gathers everything the templates (``templates/report.*.j2``) show for one
finished run directory, formatted (strings) and sanitised; a section is present only when the run
has its data, so older runs that lack one still render. What the page shows is what the run
already exports: aggregate figures, and per record only the top-k rows of
``vulnerable_records.csv``. The judgements (levels, the headline FPR, when a finding is
"outliers") come from :mod:`miaudit.report.verdict`; what is read from the directory and how
paths are cut, from :mod:`miaudit.report.load`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from miaudit.report import format as fmt
from miaudit.report.load import figure, load_run, rebuild_path, safe, scrub
from miaudit.report.summary import records_at_risk
from miaudit.report.verdict import (
    LARGE_GAP,
    LEVEL_TITLES,
    chance_like,
    headline_key,
    level_of,
    level_scale,
    outlier_strength,
)
from miaudit.results import ATTACKERS, HEADLINE_FPR, attack_strength, rank_attacks, strongest
from miaudit.rundir import RunDir
from miaudit.vulnerability.measures import MEASURES

#: rows of vulnerable_records.csv shown at most (the analysis's top_k decides below this)
MAX_TOP_RECORDS = 25

ATTACK_NAMES = {
    "loss": "loss threshold",
    "confidence": "confidence threshold",
    "entropy": "entropy threshold",
    "modified-entropy": "modified-entropy threshold",
    "calibrated-loss": "calibrated loss",
    "lira-online": "LiRA online",
    "lira-online-fixed": "LiRA online, fixed variance",
    "lira-offline": "LiRA offline",
    "lira-offline-fixed": "LiRA offline, fixed variance",
    "rmia-online": "RMIA online",
    "rmia-offline": "RMIA offline",
    "shokri": "shadow-model attack (Shokri)",
    "label-only-gap": "label-only gap attack",
    "label-only-augment": "label-only augmentation attack",
}
KNOWLEDGE = {
    "none": "none",
    "offline": "OUT only",
    "online": "IN and OUT",
}
FIGURE_ORDER = ("tsne.png", "gallery.png", "gradcam.png", "tsne_logits.png", "deciles.png")


def attack_name(name: str | None) -> str:
    """An attack's name in words (``lira-online-fixed`` -> "LiRA online, fixed variance")."""
    return "n/a" if name is None else ATTACK_NAMES.get(name, name)


def tpr_cell(r: dict, key: str) -> dict:
    """A table cell: an attack's TPR at FPR ``key`` with its interval, marked when unreliable."""
    ci = (r.get("ci95") or {}).get("tpr_at_fpr", {}).get(key)
    return {"text": fmt.pct_ci(r.get("tpr_at_fpr", {}).get(key), ci), "range": fmt.pct_range(ci),
            "unreliable": not r.get("reliable", {}).get(key, True)}


def cell(x: float | None, ci: list | None = None) -> dict:
    """A table cell: a share with its interval."""
    return {"text": fmt.pct_ci(x, ci), "range": fmt.pct_range(ci), "unreliable": False}


def _n_per_target(r: dict, field: str) -> float | None:
    vals = [t.get(field) for t in r.get("per_target", []) if t.get(field) is not None]
    return sum(vals) / len(vals) if vals else None


def _min_nonmembers(attacks: dict) -> int | None:
    vals = [t["n_nonmembers"] for r in attacks.values() for t in r.get("per_target", []) if "n_nonmembers" in t]
    return min(vals) if vals else None


def params_text(params: dict | None) -> str:
    """Parameters as ``k=v, ...``, paths shown by their name only."""
    if not params:
        return ""
    return ", ".join(f"{k}={_value_text(v)}" for k, v in safe(params).items())


def _value_text(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_value_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + params_text(v) + "}"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _share_words(cut: float) -> str:
    return "at least half" if abs(cut - 0.5) < 1e-9 else f"at least {fmt.pct(cut)}"


# --- sections -----------------------------------------------------------------------------------


def _attacks_section(root: Path, results: dict, key: str) -> dict:
    attacks = results.get("attacks", {})
    cols = [k for k in ("0.001", "0.01") if any(k in r.get("tpr_at_fpr", {}) for r in attacks.values())]
    if key not in cols:
        cols = sorted({*cols, key}, key=float)
    best = strongest(attacks, key)
    order = rank_attacks(attack_strength(attacks, key))
    rows = []
    for name in order:
        r = attacks[name]
        ci = r.get("ci95") or {}
        rows.append({
            "name": name, "long_name": attack_name(name), "strongest": name == best,
            "knowledge": KNOWLEDGE.get(r.get("knowledge", ""), r.get("knowledge", "")),
            "auc": cell(r.get("auc"), ci.get("auc")), "advantage": cell(r.get("advantage"), ci.get("advantage")),
            "tpr": [tpr_cell(r, k) for k in cols],
        })
    n_boot = results.get("config", {}).get("audit", {}).get("bootstrap")
    ppv = None
    if best is not None:
        table = attacks[best].get("ppv") or {}
        p50, p01 = table.get("0.5", {}).get(key), table.get("0.01", {}).get(key)
        if p50 is not None and p01 is not None:
            ppv = {"half": fmt.pct(p50), "one_in_100": fmt.pct(p01)}
    return {
        "columns": [f"TPR@{fmt.fpr_label(k)}" for k in cols],
        "rows": rows,
        "any_unreliable": any(c["unreliable"] for r in rows for c in r["tpr"]),
        "n_boot": n_boot,
        "ppv": ppv,
        "strongest": best,
        "fpr": fmt.fpr_label(key),
        "skipped": [{"name": n, "why": scrub(w)} for n, w in sorted(results.get("skipped_attacks", {}).items())],
        # the unreliable-TPR and skipped-attack warnings are shown as footnote and list already
        "warnings": [scrub(w) for w in results.get("warnings", []) if "fewer than 10/FPR" not in w
                     and not w.startswith("attack ")],
        "figure": figure(root, RunDir(root).roc_figure.relative_to(root).as_posix()),
    }


def verdict_section(results: dict, key: str, vuln: dict | None) -> dict:
    """The verdict box: the strongest attack's TPR at the headline FPR as a level, records at risk
    beyond chance, utility, and the vulnerable set's size against chance (when analysed)."""
    attacks = results["attacks"]
    alpha = float(key)
    best = strongest(attacks, key)
    r = attacks[best]
    tpr = r["tpr_at_fpr"].get(key)
    ci = (r.get("ci95") or {}).get("tpr_at_fpr", {}).get(key)
    reliable = r.get("reliable", {}).get(key, True)
    near_chance = chance_like(tpr, ci, alpha)
    level = level_of(tpr, alpha)
    n_members = _n_per_target(r, "n_members")
    risk = records_at_risk(r, key)
    util = results.get("utility", {})
    train, test = util.get("train_acc"), util.get("test_acc")
    n_targets = len(results.get("pool", {}).get("targets", [])) or None
    verdict = {
        "level": level,
        # a point estimate above "low" whose interval still reaches chance: say both
        "title": LEVEL_TITLES[level] + (" (uncertain)" if near_chance and level != "low" else ""),
        "tpr": fmt.pct(tpr),
        "tpr_ci": fmt.pct_ci(tpr, ci),
        "tpr_range": fmt.pct_range(ci),
        "fpr": fmt.fpr_label(key),
        "one_in": fmt.one_in(alpha),
        "chance": fmt.fpr_label(alpha),
        "chance_like": near_chance,
        "unreliable": not reliable,
        "attack": best,
        "attack_long": attack_name(best),
        "auc": fmt.pct(r.get("auc")),
        "n_attacks": len(attacks),
        "n_members": fmt.count(n_members),
        # the headline is the excess over chance: a random guess also flags alpha x members (#16)
        "at_risk": fmt.count(risk["excess"]) if risk else None,
        "at_risk_pm": fmt.count((risk["excess_ci"][1] - risk["excess_ci"][0]) / 2) if risk and risk["excess_ci"] else None,
        "flagged": fmt.count(risk["flagged"]) if risk else None,
        "by_chance": fmt.count(alpha * n_members) if n_members is not None else None,
        "train_acc": fmt.pct(train) if train is not None else None,
        "test_acc": fmt.pct(test) if test is not None else None,
        "gap_large": train is not None and test is not None and train - test >= LARGE_GAP,
        # from the rounded figures shown, so the reader's own subtraction agrees
        "gap": fmt.decimal(round(100 * train, 1) - round(100 * test, 1)) if train is not None and test is not None else None,
        "n_targets": n_targets,
        "scale": level_scale(alpha),
        "vulnerable": None,
    }
    dp = results.get("pool", {}).get("dp")
    verdict["epsilon"] = f"{dp['epsilon_max']:.2f}" if dp and dp.get("epsilon_max") is not None else None
    if vuln is not None:
        verdict["vulnerable"] = {k: vuln[k] for k in ("set_size", "n_audited", "chance", "chance_who", "distinguishable", "fpr",
                                                     "share_words", "fdr", "p")}
    return verdict


def _chance_evidence(v: dict, alpha: float) -> str:
    """The chance control's evidence in words: a target audit's bootstrap interval of TPR, else the p-value."""
    ci = v.get("tpr_ci95") if v.get("chance_method") == "bootstrap" else None
    if ci:
        return f"TPR 95% interval {fmt.pct(ci[0])}–{fmt.pct(ci[1])} vs {fmt.fpr_label(alpha)}"
    return fmt.pvalue(v.get("p_value"))


def _vulnerability_section(root: Path, results: dict, config: dict) -> dict | None:
    v = results.get("vulnerability")
    if not v:
        return None
    alpha = float(v.get("alpha", HEADLINE_FPR))
    stats = v.get("statistics") or {}
    natural = v.get("statistics_natural_only") or {}

    def oriented(s: dict | None) -> float | None:
        a = (s or {}).get("vs_random_sample", {}).get("auroc")
        if a is None:
            return None
        return a if (s or {}).get("atypical_when", "high") == "high" else 1.0 - a

    measures = []
    for name, s in stats.items():
        rho = s.get("spearman_vs_vulnerability", {}).get("rho")
        measures.append({
            "name": name,
            "description": s.get("description", ""),
            "words": MEASURES[name].words if name in MEASURES else name.replace("_", " "),
            "atypical_when": s.get("atypical_when", ""),
            "auroc": oriented(s),
            "auroc_text": fmt.pct(oriented(s)),
            "natural_text": fmt.pct(oriented(natural.get(name))) if name in natural else None,
            "rho": "n/a" if rho is None else f"{rho:+.2f}",
            "p": fmt.pvalue(s.get("vs_random_sample", {}).get("p_value")),
        })
    # the one-line "vulnerable => outlier" finding uses the measures that are evidence of it (measures.py)
    evidence = [m for m in measures if m["auroc"] is not None
                and (m["name"] not in MEASURES or MEASURES[m["name"]].outlier_evidence)]
    finding = None
    if evidence and v.get("set_size", 0):
        top = max(evidence, key=lambda m: (m["auroc"], m["name"]))
        nat = oriented(natural.get(top["name"])) if natural else None
        finding = {
            "strength": outlier_strength(top["auroc"]),
            "measure": top["name"], "words": top["words"], "auroc": fmt.pct(top["auroc"]),
            "natural": fmt.pct(nat) if nat is not None else None,
        }
    enrichment = None
    if v.get("enrichment"):
        kinds = v["enrichment"].get("kinds", {})
        order = sorted(k for k in kinds if k not in ("natural", "all-planted")) + [
            k for k in ("natural", "all-planted") if k in kinds]
        enrichment = [{
            "kind": k, "n_vulnerable": fmt.count(kinds[k].get("n_vulnerable")), "n_audited": fmt.count(kinds[k].get("n_audited")),
            "base_rate": fmt.pct(kinds[k].get("base_rate")), "share": fmt.pct(kinds[k].get("share_of_vulnerable")),
            "enrichment": "n/a" if kinds[k].get("enrichment") is None else f"×{kinds[k]['enrichment']:.1f}",
            "tp_rate": fmt.pct(kinds[k].get("tp_rate")),
        } for k in order]
    st = (v.get("stability") or {}).get("across_targets") or {}
    stability = None
    if st.get("jaccard_mean") is not None:
        stability = {"jaccard": fmt.decimal(st["jaccard_mean"], 2), "chance": fmt.decimal(st.get("chance_jaccard_mean"), 3)}
    figures = [f for f in (figure(root, rel) for rel in _ordered_figures(v.get("figures", []))) if f is not None]
    top_k = len(v.get("top_records") or []) or (config.get("analysis", {}).get("top_k") or 0)
    records = _top_records(root, min(top_k, MAX_TOP_RECORDS))
    by_alpha = []
    for k, b in sorted((v.get("by_alpha") or {}).items(), key=lambda kv: -float(kv[0])):
        if abs(float(k) - alpha) < 1e-15:
            continue
        by_alpha.append({"fpr": fmt.fpr_label(k), "set_size": fmt.count(b.get("set_size")),
                         "chance": fmt.decimal(b.get("chance_expected")),
                         "distinguishable": bool(b.get("distinguishable_from_chance")),
                         "unreliable": not b.get("reliable", True)})
    return {
        "attack": v.get("attack"),
        "attack_long": attack_name(v.get("attack")),
        "choice": (v.get("attack_choice") or "").split(":")[0],
        "fpr": fmt.fpr_label(alpha),
        "share_words": _share_words(float(v.get("cut", 0.5))),
        "n_targets": v.get("n_targets"),
        "set_size": fmt.count(v.get("set_size")),
        "set_size_raw": int(v.get("set_size", 0)),
        "n_audited": fmt.count(v.get("n_audited")),
        "chance": fmt.decimal(v.get("chance_expected")),
        # who "chance" is: the same attack on random membership designs (the permutation control), or
        # a random α-threshold per target (the binomial control, with analysis.chance_permutations: 0)
        "chance_who": ("the same attack on random membership designs" if v.get("chance_method") == "permutation"
                       else "a random attack"),
        "distinguishable": bool(v.get("distinguishable_from_chance")),
        "fdr": fmt.pct(v.get("fdr_estimate")),
        "p": _chance_evidence(v, alpha),
        "by_alpha": by_alpha,
        "measures": measures,
        "has_natural": bool(natural),
        "finding": finding,
        "enrichment": enrichment,
        "reasons": [{"reason": k, "count": fmt.count(n)} for k, n in (v.get("reason_counts") or {}).items()],
        "stability": stability,
        "figures": figures,
        "records": records,
        "csv": RunDir(root).vulnerable_records.name if RunDir(root).vulnerable_records.is_file() else None,
        # an audit of signals: what needs the models' features or the records, and was not computed
        "skipped_measures": [{"name": k, "why": w} for k, w in (v.get("skipped_measures") or {}).items()],
        "skipped_figures": [{"name": k, "why": w} for k, w in (v.get("skipped_figures") or {}).items()],
        "record_ids": v.get("record_ids"),
        "target_mode": bool(results.get("target")),  # one model against references: reasons differ per item
    }


def _ordered_figures(listed: Iterable[str]) -> list[str]:
    listed = list(listed)
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    return sorted(listed, key=lambda rel: (rank.get(Path(rel).name, len(rank)), rel))


def _top_records(root: Path, k: int) -> dict | None:
    """The first ``k`` rows of ``vulnerable_records.csv`` (its own ranking), with class names for predictions."""
    path = RunDir(root).vulnerable_records
    if k <= 0 or not path.is_file():
        return None
    names: dict[str, str] = {}
    head: list[dict] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):  # labels -> class names from every row; records from the head only
            names.setdefault(row.get("label", ""), row.get("class_name", ""))
            if len(head) < k:
                head.append(row)
    if not head:
        return None
    planted = "planted" in head[0]
    rows = []
    for rank, row in enumerate(head, 1):
        pred = row.get("predicted_out", "")
        vul = row.get("vulnerability", "")
        rows.append({
            "rank": rank,
            "record_id": row.get("origin") or row.get("record_id", ""),  # a target audit names file and row
            "label": row.get("class_name") or row.get("label", ""),
            "predicted": "none" if pred == "-1" else names.get(pred, pred),
            "flagged": f"{row.get('tp_count', '?')} of {row.get('n_in_targets', '?')}",
            "vulnerability": f"{float(vul):.2f}" if vul not in ("", None) else "n/a",
            "beyond": _beyond_text(row.get("score_beyond_nonmembers")),
            "reason": (row.get("reason") or "").replace("+", ", "),
            "planted": (row.get("planted") or "–") if planted else None,
        })
    return {"rows": rows, "planted": planted, "has_beyond": "score_beyond_nonmembers" in head[0]}


def _beyond_text(value: str | None) -> str:
    """The score beyond non-members with 3 significant figures' worth of separation (0.84, 12.3, 145.0)."""
    if not value:
        return "n/a"
    x = float(value)
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def defence_tables(results: dict, key: str) -> list[dict]:
    """Per inference-time defence: utility before/after and each attack's TPR under the three attackers."""
    out = []
    base = results.get("attacks", {})
    for name, d in (results.get("defences") or {}).items():
        attackers = d.get("attackers", {})
        cols = ["no defence", *[a for a in ATTACKERS if a in attackers]]
        names = sorted({n for a in attackers.values() for n in a} | set(base),
                       key=lambda n: (-base.get(n, {}).get("tpr_at_fpr", {}).get(key, -1.0), n))
        rows = []
        for n in names:
            cells = [tpr_cell(base[n], key) if n in base else None]
            cells += [tpr_cell(attackers[a][n], key) if n in attackers[a] else None for a in cols[1:]]
            if any(c is not None for c in cells[1:]):
                rows.append({"name": n, "cells": cells})
        by_attacker = []
        for col, view in zip(cols, [base, *(attackers[a] for a in cols[1:])]):
            s = strongest(view, key) if view else None
            by_attacker.append({"attacker": col, "attack": s,
                              "tpr": tpr_cell(view[s], key) if s else None,
                              "level": level_of(view[s]["tpr_at_fpr"].get(key), float(key)) if s else None})
        util = d.get("utility", {})
        before, after = util.get("before", {}), util.get("after", {})
        by_col = dict(zip(cols, by_attacker))
        out.append({
            "adaptive": by_col["adaptive"] if by_col.get("adaptive", {}).get("attack") else None,
            "undefended": by_col["no defence"],
            "name": name,
            "params": params_text(d.get("params")),
            "train": [fmt.pct(before.get("train_acc")), fmt.pct(after.get("train_acc"))],
            "test": [fmt.pct(before.get("test_acc")), fmt.pct(after.get("test_acc"))] if "test_acc" in after else None,
            "argmax_changed": fmt.pct(d.get("argmax_changed")),
            "columns": cols,
            "rows": rows,
            "strongest": by_attacker,
            "skipped": [{"attacker": a, "name": n, "why": scrub(w)} for a, s in sorted((d.get("skipped") or {}).items())
                        for n, w in sorted(s.items())],
        })
    return out


def setup_section(run: dict) -> dict:
    """The setup table (what was audited, how, on what machine) and the data splits' uses."""
    results, config, manifest, timing = run["results"], run["config"], run["manifest"], run["timing"]
    data = results.get("data", {})
    pool = results.get("pool", {})
    train = config.get("train", {})
    model = config.get("model", {})
    source = safe(results.get("source") or manifest.get("source") or {})
    splits = data.get("splits", {})
    recipes = [{"name": r.get("name", "?"), "params": params_text(r.get("params"))} for r in train.get("recipes", [])]
    defences = [{"name": d.get("name", "?"), "params": params_text(d.get("params"))} for d in config.get("defences") or []]
    train_s = [s for s in timing.get("members_train_s", []) if isinstance(s, (int, float))]
    stages = {k: v for k, v in (timing.get("stages_s") or {}).items() if isinstance(v, (int, float))}
    dp = pool.get("dp")
    audit = config.get("audit", {})
    rows = [
        ("Run directory", run["root"].resolve().name),
        ("Kind", "audit of a signals file" if source.get("signals") else "full run: the pool was trained by miaudit"),
    ]
    if source.get("signals"):
        sha = source.get("sha256") or ""
        rows.append(("Signals file", f"{source['signals']}" + (f" (SHA-256 {sha[:12]}…)" if sha else "")))
    rows.append(("Dataset", f"{data.get('name', 'n/a')} ({data.get('kind', '?')}), {fmt.count(data.get('n_records'))} "
                            f"records, {data.get('n_classes', '?')} classes"
                            + (f", input shape {'×'.join(map(str, data['input_shape']))}" if data.get("input_shape") else "")))
    if not source.get("signals"):
        rows.append(("Model", f"{model.get('name', 'n/a')}" + (f" ({params_text(model.get('params'))})" if model.get("params") else "")))
        rows.append(("Training", ", ".join(p for p in [
            f"{train.get('optimizer')} lr {_value_text(train.get('lr'))}" if train.get("optimizer") else "",
            f"{train.get('epochs')} epochs" if train.get("epochs") is not None else "",
            f"batch {train.get('batch_size')}" if train.get("batch_size") else "",
            f"weight decay {_value_text(train.get('weight_decay'))}" if train.get("weight_decay") else "",
            f"label smoothing {_value_text(train.get('label_smoothing'))}" if train.get("label_smoothing") else "",
        ] if p) or "n/a"))
        rows.append(("Training-time defences (recipes)",
                     "; ".join(f"{r['name']}" + (f" ({r['params']})" if r["params"] else "") for r in recipes) or "none"))
    if dp:
        rows.append(("Differential privacy", f"DP-SGD, ε ≤ {dp.get('epsilon_max', float('nan')):.2f} per model"
                                            + (f", δ = {dp['delta'][0]:g}" if dp.get("delta") else "")))
    n_models = pool.get("n_models")
    targets = pool.get("targets", [])
    rows.append(("Pool", f"{n_models} models, each trained on a random half of the audit pool; "
                         f"{len(targets)} play the target in turn, the others are its references"
                 if not source.get("signals") else f"{n_models} models; {len(targets)} targets"))
    rows.append(("Inference-time defences",
                 "; ".join(f"{d['name']}" + (f" ({d['params']})" if d["params"] else "") for d in defences) or "none"))
    rows.append(("Seed", str(results.get("seed", config.get("seed", "n/a")))))
    extra = []
    if audit.get("bootstrap"):
        extra.append(f"{audit['bootstrap']} bootstrap resamples for the 95% intervals")
    if data.get("kind") == "image" and (audit.get("queries") or 1) > 1:  # tabular data is queried once
        extra.append(f"{audit['queries']} queries per record (augmentations)")
    if extra:
        rows.append(("Attack settings", "; ".join(extra)))
    if timing.get("total_s") is not None:
        detail = ", ".join(f"{k} {fmt.duration(v)}" for k, v in stages.items() if v >= 0.5)
        rows.append(("Run time (last invocation)", fmt.duration(timing["total_s"]) + (f" ({detail})" if detail else "")))
    if (train_text := _train_time_text(timing, train_s)) is not None:
        rows.append(("Training time per model", train_text))
    device = manifest.get("device")
    if device:
        choice = manifest.get("thread_choice") or {}
        threads = f", {_plural(manifest['threads'], 'thread')}" if manifest.get("threads") else ""
        why = f" ({choice['reason']})" if choice.get("setting") == "auto" and choice.get("reason") else ""
        rows.append(("Device", f"{device}{threads}{why}"))
    versions = results.get("versions") or manifest.get("versions") or {}
    if versions:
        rows.append(("Versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")))
    split_rows = [{"name": k, "size": fmt.count(splits[k]), "use": SPLIT_USES.get(k, "")}
                  for k in ("audit", "population", "validation", "test") if k in splits]
    return {"rows": [{"key": k, "value": v} for k, v in rows], "splits": split_rows}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _train_time_text(timing: dict, train_s: list[float]) -> str | None:
    """Mean training time of the models this invocation trained; reused ones (another load) apart."""
    units = timing.get("train_units")
    if not isinstance(units, list):  # runs before timing.json had train_units
        return f"{fmt.duration(sum(train_s) / len(train_s))} (mean of {len(train_s)})" if train_s else None
    now = [u for u in units if u.get("this_run")]
    n_now = sum(len(u.get("members", [])) for u in now)
    n_before = sum(len(u.get("members", [])) for u in units) - n_now
    before = f"; {_plural(n_before, 'model')} reused from an earlier invocation" if n_before else ""
    if not n_now:
        return f"none trained in the last invocation{before}" if n_before else None
    threads = sorted({u.get("threads") for u in now if isinstance(u.get("threads"), int)})
    thread_text = f", {_plural(threads[0], 'thread')}" if len(threads) == 1 else ""
    groups = [u for u in now if u.get("batched")]
    group_text = (f"; trained in {_plural(len(groups), 'batched group')} of "
                  f"{'/'.join(str(len(u['members'])) for u in groups)}, {fmt.duration(sum(u['wall_s'] for u in groups) / len(groups))} each"
                  if groups else "")
    mean = sum(float(u.get("wall_s") or 0.0) for u in now) / n_now
    return f"{fmt.duration(mean)} (mean of {n_now} trained in the last invocation{thread_text}{group_text}){before}"


SPLIT_USES = {
    "audit": "records whose membership is tested; each model trains on half of them",
    "population": "never trained on; reference data for the attacks",
    "validation": "early stopping / model selection only",
    "test": "never trained on; measures test accuracy",
}


def build_context(run_dir: Path | str) -> dict:
    """Everything the templates show for one run directory, formatted (strings) and sanitised."""
    run = load_run(run_dir)
    root, results, config = run["root"], run["results"], run["config"]
    attacks = results.get("attacks") or {}
    key = headline_key(attacks)
    vuln = _vulnerability_section(root, results, config)
    verdict = verdict_section(results, key, vuln) if attacks and key is not None else None
    data = results.get("data", {})
    defences = defence_tables(results, key) if key is not None and results.get("defences") else None
    sections = [("verdict", "Verdict"), ("setup", "Setup")]
    if attacks:
        sections.append(("attacks", "Attacks"))
    if vuln:
        sections.append(("vulnerable", "Vulnerable records"))
    if defences:
        sections.append(("defences", "Defences"))
    return {
        "kind": "run",
        "title": f"Membership-inference audit: {'your model' if results.get('target') else data.get('name', 'model')}",
        "run_name": root.resolve().name,
        "run_path": rebuild_path(root),
        # one model trained outside miaudit (miaudit.pipeline.target): its one-line finding with the chance control first
        "subtitle": " · ".join(filter(None, [(results.get("target") or {}).get("headline"), subtitle(results, config)])),
        "version": (results.get("versions") or {}).get("miaudit", ""),
        "toc": [{"id": i, "title": t, "n": n} for n, (i, t) in enumerate(sections, 1)],
        "num": {i: n for n, (i, _) in enumerate(sections, 1)},
        "verdict": verdict,
        "setup": setup_section(run),
        "attacks": _attacks_section(root, results, key) if attacks else None,
        "vulnerability": vuln,
        "defences": defences,
        "defence_fpr": fmt.fpr_label(key) if key is not None else None,
        "min_nonmembers": fmt.count(_min_nonmembers(attacks)) if _min_nonmembers(attacks) is not None else None,
        "sweep": None,
    }


def subtitle(results: dict, config: dict) -> str:
    """The line under the title: model, recipes, pool size, seed (what the config says of models trained here)."""
    pool = results.get("pool", {})
    trained_here = not (results.get("source") or {}).get("signals")  # an audit's config says nothing of its models
    model = config.get("model", {}).get("name") if trained_here else None
    recipes = [r.get("name", "?") for r in config.get("train", {}).get("recipes", [])] if trained_here else []
    parts = [p for p in [
        f"model {model}" if model else "",
        f"recipes: {'+'.join(recipes)}" if recipes else "",
        f"{pool.get('n_models')} models" if pool.get("n_models") else "",
        f"seed {results.get('seed')}" if results.get("seed") is not None else "",
    ] if p]
    return " · ".join(parts)

