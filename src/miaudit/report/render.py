"""``report.html`` and ``report.md``: the audit on one self-contained page, for whoever signs off a model.

Rendered only from the files of a finished run directory — ``results.json``, ``config.resolved.yaml``,
``run.json``, ``timing.json``, ``figures/*.png`` and the head of ``vulnerable_records.csv`` — so
``miaudit report RUN_DIR`` rebuilds the page of any run, including older runs that lack a section
(a section is shown only when the run has its data). A sweep directory gets its own page from its
variants' run directories (:func:`write_sweep_report`).

The HTML page needs nothing but itself: figures are base64 PNG data URIs, the CSS is inline, there
is no script, and a Content-Security-Policy forbids every request to another host (a browser
reports any attempt in its console). ``report.md`` holds the same content as Markdown tables with
the figures linked, for pasting into tickets.

What the page shows is what the run already exports: aggregate figures, and per record only the
top-k rows of ``vulnerable_records.csv``. Paths are shown relative to the run directory (its own
name at most), never as absolute paths of the machine. The output is deterministic: the same run
directory renders to the same bytes (no clock is read; run times are the run's own records).

Reading guide for the verdict: the headline rate is TPR at 1% FPR of the strongest attack (the
one with the highest TPR there, ties by AUC). The leakage level compares it with chance, which
is the FPR itself (a random guess flags 1% of members at 1% FPR): *low* below 2× chance, *elevated*
from 2× to 10×, *high* from 10× (:data:`LEVELS`).
"""

from __future__ import annotations

import base64
import csv
import logging
import math
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from miaudit.errors import DataError, RunDirError
from miaudit.io import read_json, write_text
from miaudit.report import format as fmt
from miaudit.results import ATTACKERS

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
#: the FPR of the headline figure (falls back to the closest FPR the run measured)
HEADLINE_FPR = 0.01
#: leakage level from TPR at the headline FPR in multiples of chance (= that FPR): below 2x low,
#: below 10x elevated, else high. 2x: clearly above a random guess; 10x: one flag in ten is a
#: false alarm at most, so being flagged says something about almost every record flagged.
LEVELS: tuple[tuple[str, float], ...] = (("low", 2.0), ("elevated", 10.0), ("high", math.inf))
LEVEL_TITLES = {"low": "Low leakage", "elevated": "Elevated leakage", "high": "High leakage"}
#: rows of vulnerable_records.csv shown at most (the analysis's top_k decides below this)
MAX_TOP_RECORDS = 25
#: a vulnerable set is called "outliers" when the best outlier measure orders a vulnerable record
#: above a random one at least this often (AUROC; 0.5 = no difference)
OUTLIER_AUROC = (0.6, 0.7)
#: measures left out of the one-line "vulnerable => outlier" finding: memorisation is the IN-vs-OUT
#: confidence gap, almost what the attacks measure, so it is no independent evidence (still tabled)
NOT_OUTLIER_EVIDENCE = {"memorisation"}
#: each outlier measure of the analysis in plain words (what "atypical" means for it)
MEASURE_WORDS = {
    "centroid_distance": "far from the centre of its class",
    "knn_disagreement": "its nearest neighbours carry other labels",
    "lof": "in a sparse corner of its class (local outlier factor)",
    "confidence_out": "models that never saw it are unsure of its label",
    "margin_out": "models that never saw it prefer another class",
    "memorisation": "models are far more confident on it once trained on it (memorisation)",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

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
FIGURE_CAPTIONS = {
    "roc.png": "ROC of every attack on log-log axes (mean over target models). Curves far above the dotted "
               "chance line at the left edge are the attacks that identify records with few false alarms.",
    "tsne.png": "t-SNE map of audited records (one model's penultimate features), coloured by class (by distance to "
                "the class centroid when there are more than 10 classes); vulnerable records circled, over-sampled when "
                "rare (the legend gives their share). Circled points apart from their class, or inside another "
                "class's cluster, are the outliers.",
    "tsne_logits.png": "t-SNE map of the same records' logits; vulnerable records circled.",
    "gallery.png": "The top vulnerable records (framed in red), each beside typical records of its class, with the "
                   "prediction of one named model (IN: it trained on the record) and of the models that never saw it.",
    "gradcam.png": "Grad-CAM of the gallery's model on vulnerable records it trained on, beside typical records of the "
                   "same class it also trained on: where the model looks (relevance scaled to [0, 1] per image).",
    "deciles.png": "Attack TPR (bars) and FPR (line) at the analysis FPR by decile of each outlier measure: leakage "
                   "concentrated in the atypical deciles means vulnerable records are outliers.",
    "utility_privacy.png": "Test accuracy against TPR at 1% FPR of the strongest attack, per variant; the Pareto "
                           "front (no other variant is both more accurate and more private) is joined by a line.",
}
FIGURE_ORDER = ("tsne.png", "gallery.png", "gradcam.png", "tsne_logits.png", "deciles.png")


# --- reading the run directory ----------------------------------------------------------------


def _read_opt(path: Path) -> dict:
    """A JSON file's content, or {} when it is missing or unreadable (the report never needs it)."""
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (DataError, OSError) as exc:
        log.warning("report: %s unreadable (%s); left out", path.name, exc)
        return {}
    return data if isinstance(data, dict) else {}


def load_run(run_dir: Path | str) -> dict:
    """The files of a finished run: ``results``, ``config``, ``manifest`` (run.json), ``timing``."""
    root = Path(run_dir)
    if not (root / "results.json").is_file():
        raise DataError(f"{root / 'results.json'} not found: {root} is not a finished miaudit run directory")
    results = read_json(root / "results.json")
    config = results.get("config") or {}
    if not config and (root / "config.resolved.yaml").is_file():
        config = yaml.safe_load((root / "config.resolved.yaml").read_text(encoding="utf-8")) or {}
    return {"root": root, "results": results, "config": config,
            "manifest": _read_opt(root / "run.json"), "timing": _read_opt(root / "timing.json")}


def _safe(value: Any) -> Any:
    """``value`` with every absolute path replaced by its file name (nothing of the user's tree leaks)."""
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or value
    return value


_ABS_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?[/\\](?:[^\s/\\'\"]+[/\\])+([^\s/\\'\"]*)")


def _scrub(text: str) -> str:
    """Free text (warnings, reasons) with absolute paths cut to their last component.

    >>> _scrub("cannot read /home/ana/runs/a/scores.npy (see ./rel/x.csv)")
    'cannot read scores.npy (see ./rel/x.csv)'
    """
    return _ABS_PATH.sub(lambda m: m.group(1), str(text))


def _figure(root: Path, rel: str) -> dict | None:
    """A PNG of the run directory as a data URI (and its relative path for Markdown); None if absent."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or p.suffix.lower() != ".png":
        return None
    path = root / p
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        log.warning("report: %s is not a PNG; left out", rel)
        return None
    return {
        "path": p.as_posix(),
        "data": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        "caption": FIGURE_CAPTIONS.get(p.name, ""),
        "alt": p.stem.replace("_", " "),
    }


# --- small helpers ------------------------------------------------------------------------------


def level_of(tpr: float | None, alpha: float) -> str:
    """``low`` / ``elevated`` / ``high``: TPR at FPR α against chance (= α), by :data:`LEVELS`.

    >>> level_of(0.077, 0.01), level_of(0.015, 0.01), level_of(0.25, 0.01)
    ('elevated', 'low', 'high')
    """
    if tpr is None or alpha <= 0:
        return "low"
    ratio = tpr / alpha
    return next(name for name, upper in LEVELS if ratio < upper)


def level_scale(alpha: float) -> list[dict]:
    """The thresholds of the levels at FPR α, for the legend on the page."""
    out, lo = [], 0.0
    for name, upper in LEVELS:
        hi = upper * alpha
        rng = f"below {fmt.fpr_label(hi)}" if lo == 0 else (
            f"{fmt.fpr_label(lo)} and above" if math.isinf(hi) else f"{fmt.fpr_label(lo)} to {fmt.fpr_label(hi)}")
        out.append({"level": name, "title": LEVEL_TITLES[name], "range": rng})
        lo = hi
    return out


def attack_name(name: str | None) -> str:
    return "n/a" if name is None else ATTACK_NAMES.get(name, name)


def _headline_key(attacks: dict) -> str | None:
    """The FPR key of the headline: 1% when measured, else the closest positive FPR measured."""
    keys = {k for r in attacks.values() for k in r.get("tpr_at_fpr", {})}
    if not keys:
        return None
    from miaudit.metrics import fpr_key

    want = fpr_key(HEADLINE_FPR)
    if want in keys:
        return want
    positive = [k for k in keys if float(k) > 0]
    if not positive:
        return max(keys, key=float)
    return min(positive, key=lambda k: (abs(math.log(float(k) / HEADLINE_FPR)), float(k)))


def _strongest(attacks: dict, key: str) -> str | None:
    from miaudit.results import strongest

    return strongest(attacks, key)


def _tpr_cell(r: dict, key: str) -> dict:
    ci = (r.get("ci95") or {}).get("tpr_at_fpr", {}).get(key)
    return {"text": fmt.pct_ci(r.get("tpr_at_fpr", {}).get(key), ci), "range": fmt.pct_range(ci),
            "unreliable": not r.get("reliable", {}).get(key, True)}


def _cell(x: float | None, ci: list | None = None) -> dict:
    return {"text": fmt.pct_ci(x, ci), "range": fmt.pct_range(ci), "unreliable": False}


def _n_per_target(r: dict, field: str) -> float | None:
    vals = [t.get(field) for t in r.get("per_target", []) if t.get(field) is not None]
    return sum(vals) / len(vals) if vals else None


def _min_nonmembers(attacks: dict) -> int | None:
    vals = [t["n_nonmembers"] for r in attacks.values() for t in r.get("per_target", []) if "n_nonmembers" in t]
    return min(vals) if vals else None


def _params_text(params: dict | None) -> str:
    if not params:
        return ""
    return ", ".join(f"{k}={_value_text(v)}" for k, v in _safe(params).items())


def _value_text(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_value_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + _params_text(v) + "}"
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
    best = _strongest(attacks, key)
    from miaudit.results import attack_strength, rank_attacks

    order = rank_attacks(attack_strength(attacks, key))
    rows = []
    for name in order:
        r = attacks[name]
        ci = r.get("ci95") or {}
        rows.append({
            "name": name, "long_name": attack_name(name), "strongest": name == best,
            "knowledge": KNOWLEDGE.get(r.get("knowledge", ""), r.get("knowledge", "")),
            "auc": _cell(r.get("auc"), ci.get("auc")), "advantage": _cell(r.get("advantage"), ci.get("advantage")),
            "tpr": [_tpr_cell(r, k) for k in cols],
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
        "skipped": [{"name": n, "why": _scrub(w)} for n, w in sorted(results.get("skipped_attacks", {}).items())],
        # the unreliable-TPR and skipped-attack warnings are shown as footnote and list already
        "warnings": [_scrub(w) for w in results.get("warnings", []) if "fewer than 10/FPR" not in w
                     and not w.startswith("attack ")],
        "figure": _figure(root, "figures/roc.png"),
    }


def _verdict(results: dict, key: str, vuln: dict | None) -> dict:
    attacks = results["attacks"]
    alpha = float(key)
    best = _strongest(attacks, key)
    r = attacks[best]
    tpr = r["tpr_at_fpr"].get(key)
    ci = (r.get("ci95") or {}).get("tpr_at_fpr", {}).get(key)
    reliable = r.get("reliable", {}).get(key, True)
    lo = ci[0] if ci and ci[0] is not None else tpr
    chance_like = lo is None or lo <= alpha
    level = level_of(tpr, alpha)
    n_members = _n_per_target(r, "n_members")
    from miaudit.report.summary import records_at_risk

    risk = records_at_risk(r, key)
    util = results.get("utility", {})
    train, test = util.get("train_acc"), util.get("test_acc")
    n_targets = len(results.get("pool", {}).get("targets", [])) or None
    verdict = {
        "level": level,
        # a point estimate above "low" whose interval still reaches chance: say both
        "title": LEVEL_TITLES[level] + (" (uncertain)" if chance_like and level != "low" else ""),
        "tpr": fmt.pct(tpr),
        "tpr_ci": fmt.pct_ci(tpr, ci),
        "tpr_range": fmt.pct_range(ci),
        "fpr": fmt.fpr_label(key),
        "one_in": fmt.one_in(alpha),
        "chance": fmt.fpr_label(alpha),
        "chance_like": chance_like,
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
        "gap_large": train is not None and test is not None and train - test >= 0.10,
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
            "words": MEASURE_WORDS.get(name, name.replace("_", " ")),
            "atypical_when": s.get("atypical_when", ""),
            "auroc": oriented(s),
            "auroc_text": fmt.pct(oriented(s)),
            "natural_text": fmt.pct(oriented(natural.get(name))) if name in natural else None,
            "rho": "n/a" if rho is None else f"{rho:+.2f}",
            "p": fmt.pvalue(s.get("vs_random_sample", {}).get("p_value")),
        })
    evidence = [m for m in measures if m["auroc"] is not None and m["name"] not in NOT_OUTLIER_EVIDENCE]
    finding = None
    if evidence and v.get("set_size", 0):
        top = max(evidence, key=lambda m: (m["auroc"], m["name"]))
        nat = oriented(natural.get(top["name"])) if natural else None
        finding = {
            "strength": "outliers" if top["auroc"] >= OUTLIER_AUROC[1] else
                        ("tend" if top["auroc"] >= OUTLIER_AUROC[0] else "not"),
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
    figures = [f for f in (_figure(root, rel) for rel in _ordered_figures(v.get("figures", []))) if f is not None]
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
        "csv": "vulnerable_records.csv" if (root / "vulnerable_records.csv").is_file() else None,
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
    path = root / "vulnerable_records.csv"
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


def _defence_tables(results: dict, key: str) -> list[dict]:
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
            cells = [_tpr_cell(base[n], key) if n in base else None]
            cells += [_tpr_cell(attackers[a][n], key) if n in attackers[a] else None for a in cols[1:]]
            if any(c is not None for c in cells[1:]):
                rows.append({"name": n, "cells": cells})
        strongest = []
        for col, view in zip(cols, [base, *(attackers[a] for a in cols[1:])]):
            s = _strongest(view, key) if view else None
            strongest.append({"attacker": col, "attack": s,
                              "tpr": _tpr_cell(view[s], key) if s else None,
                              "level": level_of(view[s]["tpr_at_fpr"].get(key), float(key)) if s else None})
        util = d.get("utility", {})
        before, after = util.get("before", {}), util.get("after", {})
        by_col = dict(zip(cols, strongest))
        out.append({
            "adaptive": by_col["adaptive"] if by_col.get("adaptive", {}).get("attack") else None,
            "undefended": by_col["no defence"],
            "name": name,
            "params": _params_text(d.get("params")),
            "train": [fmt.pct(before.get("train_acc")), fmt.pct(after.get("train_acc"))],
            "test": [fmt.pct(before.get("test_acc")), fmt.pct(after.get("test_acc"))] if "test_acc" in after else None,
            "argmax_changed": fmt.pct(d.get("argmax_changed")),
            "columns": cols,
            "rows": rows,
            "strongest": strongest,
            "skipped": [{"attacker": a, "name": n, "why": _scrub(w)} for a, s in sorted((d.get("skipped") or {}).items())
                        for n, w in sorted(s.items())],
        })
    return out


def _setup(run: dict) -> dict:
    results, config, manifest, timing = run["results"], run["config"], run["manifest"], run["timing"]
    data = results.get("data", {})
    pool = results.get("pool", {})
    train = config.get("train", {})
    model = config.get("model", {})
    source = _safe(results.get("source") or manifest.get("source") or {})
    splits = data.get("splits", {})
    recipes = [{"name": r.get("name", "?"), "params": _params_text(r.get("params"))} for r in train.get("recipes", [])]
    defences = [{"name": d.get("name", "?"), "params": _params_text(d.get("params"))} for d in config.get("defences") or []]
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
        rows.append(("Model", f"{model.get('name', 'n/a')}" + (f" ({_params_text(model.get('params'))})" if model.get("params") else "")))
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


def rebuild_path(root: Path) -> str:
    """The run directory as the user would type it in ``miaudit report PATH``: as given when relative
    (``runs/default`` from the project directory), relative to the working directory when inside it;
    else only its name, as the report never shows an absolute path of the machine."""
    if not root.is_absolute():
        return shlex.quote(str(root))
    try:
        return shlex.quote(str(root.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(root.name)


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


# --- one run ------------------------------------------------------------------------------------


def build_context(run_dir: Path | str) -> dict:
    """Everything the templates show for one run directory, formatted (strings) and sanitised."""
    run = load_run(run_dir)
    root, results, config = run["root"], run["results"], run["config"]
    attacks = results.get("attacks") or {}
    key = _headline_key(attacks)
    vuln = _vulnerability_section(root, results, config)
    verdict = _verdict(results, key, vuln) if attacks and key is not None else None
    data = results.get("data", {})
    defences = _defence_tables(results, key) if key is not None and results.get("defences") else None
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
        "subtitle": " · ".join(filter(None, [(results.get("target") or {}).get("headline"), _subtitle(results, config)])),
        "version": (results.get("versions") or {}).get("miaudit", ""),
        "toc": [{"id": i, "title": t, "n": n} for n, (i, t) in enumerate(sections, 1)],
        "num": {i: n for n, (i, _) in enumerate(sections, 1)},
        "verdict": verdict,
        "setup": _setup(run),
        "attacks": _attacks_section(root, results, key) if attacks else None,
        "vulnerability": vuln,
        "defences": defences,
        "defence_fpr": fmt.fpr_label(key) if key is not None else None,
        "min_nonmembers": fmt.count(_min_nonmembers(attacks)) if _min_nonmembers(attacks) is not None else None,
        "sweep": None,
    }


def _subtitle(results: dict, config: dict) -> str:
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


def _environment():  # noqa: ANN202
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("miaudit", "report/templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    return env


def _md_environment():  # noqa: ANN202
    """The Markdown template's environment: every value it prints has its HTML markup escaped
    (``<script>`` in a CSV label or class name shows as text in viewers that render Markdown as HTML)."""
    env = _environment()
    env.finalize = _md_text
    return env


def _md_text(value: Any) -> Any:
    """A value printed into Markdown: ``<`` and ``>`` as entities, so no user string becomes an HTML tag."""
    if isinstance(value, str):
        return value.replace("<", "&lt;").replace(">", "&gt;")
    return value


def _md_cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, no line breaks, HTML markup escaped."""
    return _md_text(" ".join(str(value).split()).replace("|", "\\|"))


def render(context: dict) -> tuple[str, str]:
    """(HTML, Markdown) of a report context."""
    env = _environment()
    md = _md_environment().get_template("report.md.j2").render(**context)
    md = re.sub(r"\n{3,}", "\n\n", md).strip() + "\n"  # the template errs on the side of blank lines
    return env.get_template("report.html.j2").render(**context), md


def write_report(run_dir: Path | str) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` of a finished run directory (atomically); returns their paths."""
    root = Path(run_dir)
    html, md = render(build_context(root))
    return _write_pair(root, html, md)


#: in the HTML page and the Markdown twin miaudit renders: how a report it wrote earlier is recognised
_OWN_MARKERS = {REPORT_HTML: '<meta name="generator" content="miaudit', REPORT_MD: "Generated by miaudit"}


def _ours(path: Path) -> bool:
    """Whether ``path`` is missing or a report miaudit wrote (listed as its artefact, or carrying its marker)."""
    from miaudit.io import listed_artefacts

    if not path.exists():
        return True
    if path.resolve() in listed_artefacts(path.parent):
        return True
    try:
        with open(path, "rb") as fh:
            return _OWN_MARKERS[path.name].encode() in fh.read(1 << 20)
    except OSError:
        return False


def _write_pair(root: Path, html: str, md: str) -> tuple[Path, Path]:
    """Write report.html and report.md, never over a file of the same name that miaudit did not write."""
    for name in (REPORT_HTML, REPORT_MD):
        if not _ours(root / name):
            raise RunDirError(f"{root / name} exists and was not written by miaudit; it is kept and no report "
                              "is written (move it away to get miaudit's report)")
    write_text(root / REPORT_HTML, html)
    write_text(root / REPORT_MD, md)
    return root / REPORT_HTML, root / REPORT_MD


def try_write_report(run_dir: Path | str) -> bool:
    """``write_report``, but a failure only logs a warning: results never depend on the report."""
    return _guarded(write_report, Path(run_dir))


def _guarded(write, root: Path, *args: Any) -> bool:  # noqa: ANN001
    try:
        write(root, *args)
    except Exception as exc:  # noqa: BLE001  the report is a view of complete results, never required
        log.warning("report.html not written (%s: %s); rebuild it with `miaudit report %s`",
                    type(exc).__name__, exc, rebuild_path(root))
        return False
    return True


# --- a sweep ------------------------------------------------------------------------------------


def _sweep_variants(sweep_dir: Path) -> list[str]:
    resolved = sweep_dir / "sweep.resolved.yaml"
    if resolved.is_file():
        data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
        return [v["name"] for v in data.get("variants", []) if isinstance(v, dict) and "name" in v]
    return sorted(p.name for p in (sweep_dir / "variants").iterdir() if p.is_dir()) if (sweep_dir / "variants").is_dir() else []


def build_sweep_context(sweep_dir: Path | str, rows: list[dict] | None = None) -> dict:
    """The report context of a sweep directory: its table, the utility–privacy figure, each defence's attackers."""
    from miaudit.pipeline.sweep import FPR_COLUMNS, pareto_front, variant_rows

    root = Path(sweep_dir)
    names = _sweep_variants(root)
    runs = {n: load_run(root / "variants" / n) for n in names if (root / "variants" / n / "results.json").is_file()}
    if not names or not runs:
        raise DataError(f"{root}: no finished variant (variants/*/results.json); is it a `miaudit sweep` directory?")
    if rows is None:
        rows = [row for n in names if n in runs for row in variant_rows(n, runs[n]["results"], runs[n]["timing"])]
    tpr_col = dict(FPR_COLUMNS)["0.01"]
    tpr01_col = dict(FPR_COLUMNS)["0.001"]

    def xy(r: dict) -> tuple[float, float]:
        s = r.get("strongest")
        tpr = r["attacks"][s].get(tpr_col) if s else None
        acc = r.get("test_acc")
        return (float("nan") if acc is None else acc, float("nan") if tpr is None else tpr)

    front = pareto_front([xy(r) for r in rows])
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
            "auc": _cell(c.get("auc"), c.get("auc_ci")),
            "tpr01": _cell(c.get(tpr01_col), c.get(f"{tpr01_col}_ci")),
            "tpr1": _cell(c.get(tpr_col), c.get(f"{tpr_col}_ci")),
            "level": level_of(c.get(tpr_col), HEADLINE_FPR) if c.get(tpr_col) is not None else None,
            "pareto": bool(on),
            "report": f"variants/{variant}/{REPORT_HTML}"
            if not r.get("defence") and (root / "variants" / variant / REPORT_HTML).is_file() else None,
            "_xy": xy(r),
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
    defences = [{"variant": n, "tables": _defence_tables(runs[n]["results"], "0.01")}
                for n in names if n in runs and runs[n]["results"].get("defences")]
    sections = [("verdict", "Verdict"), ("setup", "Setup"), ("defences", "Defences (sweep)")]
    total = sum(r["timing"].get("total_s") or 0.0 for r in runs.values())
    setup = _setup(first)
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
        "subtitle": f"{len(names)} variants · base: " + _subtitle(first["results"], first["config"]),
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
            "figure": _figure(root, "figures/utility_privacy.png"),
            "defences": defences,
            "missing": [n for n in names if n not in runs],
        },
    }


def write_sweep_report(sweep_dir: Path | str, rows: list[dict] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` of a sweep directory (``rows``: ``run_sweep``'s, else rebuilt)."""
    root = Path(sweep_dir)
    html, md = render(build_sweep_context(root, rows))
    return _write_pair(root, html, md)


def try_write_sweep_report(sweep_dir: Path | str, rows: list[dict] | None = None) -> bool:
    """``write_sweep_report``, but a failure only logs a warning (the sweep's tables are its results)."""
    return _guarded(write_sweep_report, Path(sweep_dir), rows)


def rebuild_report(path: Path | str) -> tuple[Path, Path]:
    """``miaudit report PATH``: the report of a run directory or of a sweep directory, from its files."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (give a miaudit run or sweep directory)")
    if (root / "results.json").is_file():
        return write_report(root)
    if (root / "sweep.resolved.yaml").is_file() or (root / "variants").is_dir():
        return write_sweep_report(root)
    raise DataError(f"{root}: neither a finished run (results.json) nor a sweep directory (sweep.resolved.yaml)")
