"""report.html / report.md: verdict wording and levels, sections shown only with their data, figures
embedded, nothing external, no absolute path, escaping, determinism; one real tiny run end to end."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from miaudit.cli import main
from miaudit.report import format as fmt
from miaudit.report.render import (
    LEVELS,
    build_context,
    level_of,
    rebuild_report,
    render,
    try_write_report,
    write_report,
    write_sweep_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- a hand-built run directory (the layout `miaudit run` writes) -----------------------------------


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def _attack(auc: float, tpr1: float, ci1: list[float], tpr01: float, knowledge: str, *, reliable01: bool = False,
            n_members: int = 10000, n_nonmembers: int = 9900) -> dict:
    per = {"n_members": n_members, "n_nonmembers": n_nonmembers}
    return {
        "auc": auc, "advantage": auc - 0.35, "knowledge": knowledge,
        "tpr_at_fpr": {"0.0": 0.0, "0.001": tpr01, "0.01": tpr1, "0.1": 0.3},
        "fpr_achieved": {"0.0": 0.0, "0.001": 0.001, "0.01": 0.01, "0.1": 0.1},
        "reliable": {"0.0": False, "0.001": reliable01, "0.01": True, "0.1": True},
        "ci95": {"auc": [auc - 0.002, auc + 0.002], "advantage": [auc - 0.354, auc - 0.346],
                 "tpr_at_fpr": {"0.0": [0.0, 0.0], "0.001": [tpr01 - 0.002, tpr01 + 0.002], "0.01": ci1, "0.1": [0.29, 0.31]}},
        "ppv": {"0.5": {"0.01": 0.885}, "0.01": {"0.01": 0.072}},
        "per_target": [per, per],
    }


VULNERABILITY = {
    "attack": "lira-online-fixed", "attack_choice": "strongest available: highest mean TPR", "alpha": 0.01, "cut": 0.5,
    "n_targets": 8, "set_size": 1712, "n_audited": 20000, "chance_expected": 11.84, "distinguishable_from_chance": True,
    "fdr_estimate": 0.0069, "p_value": 0.0,
    "by_alpha": {"0.001": {"set_size": 469, "chance_expected": 0.12, "distinguishable_from_chance": True, "reliable": False},
                 "0.01": {"set_size": 1712, "chance_expected": 11.84, "distinguishable_from_chance": True, "reliable": True}},
    "statistics": {
        "knn_disagreement": {"description": "share of k nearest unseen records with another label", "atypical_when": "high",
                             "vs_random_sample": {"auroc": 0.988, "p_value": 0.0},
                             "spearman_vs_vulnerability": {"rho": 0.79}},
        "confidence_out": {"description": "mean true-class probability under OUT models", "atypical_when": "low",
                           "vs_random_sample": {"auroc": 0.02, "p_value": 1e-200},
                           "spearman_vs_vulnerability": {"rho": -0.83}},
        "memorisation": {"description": "mean p_y IN minus OUT", "atypical_when": "high",
                         "vs_random_sample": {"auroc": 0.999, "p_value": 0.0}, "spearman_vs_vulnerability": {"rho": 0.83}},
    },
    "stability": {"across_targets": {"jaccard_mean": 0.73, "chance_jaccard_mean": 0.04}},
    "reason_counts": {"hard": 1588, "memorised": 1592},
    "top_records": [1000, 1001],
    "figures": ["figures/tsne.png", "figures/deciles.png", "../outside.png", "/etc/passwd.png"],
}


def make_run(root: Path, *, vulnerability: bool = True, defences: bool = False, extra_results: dict | None = None) -> Path:
    """A finished run directory with every file the report reads (small, fixed numbers)."""
    root.mkdir(parents=True, exist_ok=True)
    attacks = {
        "lira-online-fixed": _attack(0.793, 0.077, [0.0736, 0.0818], 0.021, "online"),
        "loss": _attack(0.733, 0.014, [0.013, 0.015], 0.001, "none"),
    }
    config = {
        "seed": 0,
        "data": {"name": "synthetic-purchase", "data_dir": str(root.resolve() / "secret-home" / "data")},
        "model": {"name": "fcn", "params": {"hidden": [1024, 512]}},
        "train": {"optimizer": "adam", "lr": 0.001, "epochs": 20, "batch_size": 128, "weight_decay": 0.0,
                  "recipes": [{"name": "targeted-augmentation",
                               "params": {"ranking_from": str(root.resolve() / "secret-home" / "runs" / "orig")}}]},
        "pool": {"n_models": 8},
        "audit": {"bootstrap": 200, "queries": 2},
        "analysis": {"top_k": 2},
        "defences": [{"name": "logit-reweighting", "params": {"w": 0.1}}] if defences else [],
    }
    results = {
        "schema_version": 1, "seed": 0, "config": config,
        "versions": {"miaudit": "0.1.0", "python": "3.11.7", "torch": "2.13.0+cpu"},
        "data": {"name": "synthetic-purchase", "kind": "tabular", "n_records": 31000, "n_classes": 100,
                 "input_shape": [600], "splits": {"audit": 20000, "population": 5000, "validation": 1000, "test": 5000}},
        "pool": {"n_models": 8, "targets": list(range(8))},
        "utility": {"train_acc": 0.9998, "test_acc": 0.8534},
        "attacks": attacks,
        "skipped_attacks": {"shokri": "needs <b>more</b> models"},
        "warnings": ["TPR at FPR 0.001 is backed by fewer than 10/FPR non-members per target"],
    }
    if vulnerability:
        results["vulnerability"] = copy.deepcopy(VULNERABILITY)
        _png(root / "figures" / "tsne.png", (10, 120, 10))
        _png(root / "figures" / "deciles.png", (10, 10, 120))
        rows = [["record_id", "label", "class_name", "vulnerable", "vulnerability", "tp_count", "n_in_targets",
                 "predicted_out", "reason", "planted"]]
        for i in range(30):
            rows.append([1000 + i, i % 3, f"class_{i % 3}" if i else "<script>alert(1)</script>", 1, 4.0 - i / 10, 4, 4,
                         (i + 1) % 3, "hard+memorised", "mislabelled" if i < 2 else ""])
        with open(root / "vulnerable_records.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    if defences:
        d_att = {"non-adaptive": {"loss": _attack(0.6, 0.012, [0.011, 0.013], 0.001, "none")},
                 "adaptive": {"lira-online-fixed": _attack(0.7, 0.031, [0.028, 0.034], 0.004, "online")},
                 "label-only": {"label-only-gap": _attack(0.55, 0.0, [0.0, 0.0], 0.0, "none")}}
        results["defences"] = {"logit-reweighting": {
            "params": {"w": 0.1}, "argmax_changed": 0.0, "attackers": d_att, "skipped": {},
            "utility": {"before": {"train_acc": 0.9998, "test_acc": 0.8534}, "after": {"train_acc": 0.9998, "test_acc": 0.8534}}}}
    results.update(extra_results or {})
    (root / "results.json").write_text(json.dumps(results))
    (root / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    (root / "run.json").write_text(json.dumps({"device": "cpu", "threads": 2, "machine": {"argv": f"{root}/secret-home/bin/miaudit"}}))
    (root / "timing.json").write_text(json.dumps({"total_s": 125.7, "stages_s": {"attacks": 42.6, "analysis": 79.4},
                                                  "members_train_s": [130.0, 122.0]}))
    _png(root / "figures" / "roc.png")
    return root


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []
        self.href: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append(tag)
        a = dict(attrs)
        if "src" in a:
            self.src.append(a["src"])
        if "href" in a:
            self.href.append(a["href"])
        if "id" in a:
            self.ids.append(a["id"])


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def _top(html: str) -> str:
    """The verdict box (everything above the contents line), whitespace collapsed."""
    return " ".join(html.split('<nav class="toc">')[0].split())


def _assert_self_contained(html: str) -> _Links:
    p = _parse(html)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    for src in p.src:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    for href in p.href:
        assert "://" not in href and not href.startswith("//") and ":" not in href.split("/")[0], href
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    return p


# --- tests --------------------------------------------------------------------------------------------


def test_verdict_says_it_in_plain_words_with_badge_chance_and_thresholds(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    top = _top(html)
    assert 'class="badge badge-elevated">Elevated leakage<' in top
    assert "strongest attack (<b>LiRA online, fixed variance</b>)" in top
    assert "<b>7.7±0.4%</b>" in top and "against 1% expected by chance" in top
    # the headline is the excess over chance (770 flagged - 100 a random guess flags), chance beside it
    assert "about <b>670 ± 41 of its 10,000 training records are at risk beyond chance</b>" in top
    assert "the attack flags about 770 of them; a random guess would flag about 100" in top
    assert "Records at risk beyond chance</div>" in top and "≈ 670</div>" in top
    assert "≈ 670 of 10,000 (flagged ≈ 770, random guess ≈ 100)" in md
    assert "<b>100.0% train / 85.3% test accuracy</b>" in top
    assert "1,712 of the 20,000 audited records" in top and "clearly distinguishable from chance" in top
    for threshold in ("below 2%", "2% to 10%", "10% and above"):  # the levels are stated on the page
        assert threshold in top
    assert "The gap of 14.7 percentage points" in top  # from the rounded figures shown
    assert md.startswith("# Membership-inference audit: synthetic-purchase\n")
    assert "**ELEVATED LEAKAGE** — **7.7%** of training records" in md and "**7.7±0.4%**" in md


def test_a_level_above_low_whose_interval_reaches_chance_is_marked_uncertain(tmp_path):
    root = make_run(tmp_path / "run", vulnerability=False)
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["lira-online-fixed"] = _attack(0.6, 0.12, [0.004, 0.25], 0.01, "online")
    (root / "results.json").write_text(json.dumps(res))
    top = _top(render(build_context(root))[0])
    assert ">High leakage (uncertain)<" in top and "<b>indistinguishable from chance</b>" in top


@pytest.mark.parametrize(("tpr", "level"), [(0.0199, "low"), (0.02, "elevated"), (0.0999, "elevated"), (0.1, "high")])
def test_levels_are_multiples_of_chance(tpr, level):
    assert level_of(tpr, 0.01) == level
    assert level_of(tpr / 10, 0.001) == level  # the same multiple of another headline FPR
    assert [name for name, _ in LEVELS] == ["low", "elevated", "high"]


def test_a_rate_within_chance_and_a_chance_like_vulnerable_set_are_said_plainly(tmp_path):
    root = make_run(tmp_path / "run")
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["lira-online-fixed"] = _attack(0.52, 0.012, [0.007, 0.017], 0.001, "online")
    res["attacks"]["loss"] = _attack(0.51, 0.011, [0.008, 0.014], 0.001, "none")
    res["vulnerability"].update(set_size=13, chance_expected=11.84, distinguishable_from_chance=False, p_value=0.31)
    (root / "results.json").write_text(json.dumps(res))
    html, md = render(build_context(root))
    top = _top(html)
    assert "badge-low" in top and "<b>indistinguishable from chance</b>, so no record is shown to be at risk" in top
    assert "this is <b>indistinguishable from chance</b> (p = 0.31)" in top
    vul = html.split('id="vulnerable"')[1]
    assert "indistinguishable from chance" in vul
    assert "**indistinguishable from chance**, so no record is shown to be at risk" in md


def test_unreliable_figures_carry_a_footnote(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    table = html.split('id="attacks"')[1].split("</table>")[0]
    assert table.count('<sup class="fn">*</sup>') == 2  # TPR@0.1% of both attacks; TPR@1% is reliable
    assert "Unreliable: backed by fewer than 10/FPR non-members per model" in html and "(9,900)" in html
    assert "2.1±0.2%\\*" in md


def test_sections_appear_only_with_their_data(tmp_path):
    bare = make_run(tmp_path / "bare", vulnerability=False)
    for f in ("run.json", "timing.json", "config.resolved.yaml"):
        (bare / f).unlink()  # an older run: only results.json and the ROC
    html, md = render(build_context(bare))
    ids = _parse(html).ids
    assert ids == ["verdict", "setup", "attacks"]
    assert "Vulnerable records" not in html and "## 4." not in md

    full = make_run(tmp_path / "full", defences=True)
    html, md = render(build_context(full))
    assert _parse(html).ids == ["verdict", "setup", "attacks", "vulnerable", "defences"]
    assert "## 5. Defences" in md and "## 4. Vulnerable records" in md
    d = html.split('id="defences"')[1]
    assert "Against an attacker who knows the defence (adaptive), the strongest attack identifies <b><span" in d
    assert "3.1±0.3%" in d and "non-adaptive" in d and "label-only" in d

    none = make_run(tmp_path / "none", vulnerability=False, extra_results={"attacks": {}})
    html, _ = render(build_context(none))
    assert "No attack results" in html and _parse(html).ids == ["verdict", "setup"]


def test_figures_are_embedded_nothing_is_requested_from_another_host(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    p = _assert_self_contained(html)
    assert len(p.src) == 3  # roc, tsne, deciles; the listed paths outside figures/ are refused
    assert "vulnerable_records.csv" in p.href and all(h.startswith("#") or h == "vulnerable_records.csv" for h in p.href)
    assert "@media print" in html
    assert "data:image" not in md
    assert "![roc](figures/roc.png)" in md and "![tsne](figures/tsne.png)" in md
    assert "[vulnerable_records.csv](vulnerable_records.csv)" in md


def test_no_absolute_path_of_the_machine_and_only_the_top_k_records(tmp_path):
    root = make_run(tmp_path / "run")
    html, md = render(build_context(root))
    assert "ranking_from=orig" in html and "ranking_from=orig" in md  # a path shown by its name only
    assert str(tmp_path) not in html + md and "secret-home" not in html + md
    res = json.loads((root / "results.json").read_text())
    res["source"] = {"signals": str(tmp_path / "secret-home" / "exports" / "signals.npz"), "sha256": "ab" * 32}
    (root / "results.json").write_text(json.dumps(res))
    html, md = render(build_context(root))
    for text in (html, md):
        assert str(tmp_path) not in text and "secret-home" not in text
        assert "signals.npz" in text  # shown by its name
        assert "1000" in text and "1001" in text and "1002" not in text  # analysis.top_k = 2 rows, no more


def test_user_strings_are_escaped(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "needs &lt;b&gt;more&lt;/b&gt; models" in html
    # many Markdown viewers render inline HTML: user strings are escaped there too (issue 15)
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_output_is_deterministic_and_written_atomically(tmp_path):
    root = make_run(tmp_path / "run")
    html, md = write_report(root)
    first = (html.read_bytes(), md.read_bytes())
    assert rebuild_report(root) == (html, md)
    assert (html.read_bytes(), md.read_bytes()) == first
    assert not list(root.glob(".report*.tmp"))


def test_a_broken_run_never_breaks_the_caller(tmp_path, caplog):
    root = make_run(tmp_path / "run")
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["loss"]["tpr_at_fpr"] = "garbage"
    (root / "results.json").write_text(json.dumps(res))
    with caplog.at_level(logging.WARNING, logger="miaudit.report.render"):
        assert try_write_report(root) is False
    assert "report.html not written" in caplog.text and "miaudit report run" in caplog.text
    assert not (root / "report.html").exists()


def test_cli_report_rebuilds_and_refuses_other_directories(tmp_path, capsys):
    root = make_run(tmp_path / "run")
    assert main(["report", str(root)]) == 0
    assert (root / "report.html").is_file() and (root / "report.md").is_file()
    assert "report:" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("miaudit: error:") and "neither a finished run" in err[0]


def test_sweep_report_table_pareto_front_and_verdict(tmp_path):
    sweep = tmp_path / "sweep"
    base = make_run(sweep / "variants" / "original", vulnerability=False, defences=True)
    res = json.loads((base / "results.json").read_text())
    res["config"]["train"]["recipes"] = []
    (base / "results.json").write_text(json.dumps(res))
    l2 = make_run(sweep / "variants" / "l2-0.01", vulnerability=False)
    res2 = json.loads((l2 / "results.json").read_text())
    res2["attacks"]["lira-online-fixed"] = _attack(0.6, 0.015, [0.012, 0.018], 0.002, "online")
    res2["utility"] = {"train_acc": 0.95, "test_acc": 0.84}
    (l2 / "results.json").write_text(json.dumps(res2))
    write_report(base)
    (sweep / "sweep.resolved.yaml").write_text(yaml.safe_dump({"variants": [{"name": "original"}, {"name": "l2-0.01"},
                                                                             {"name": "never-ran"}]}))
    _png(sweep / "figures" / "utility_privacy.png")
    html, md = write_sweep_report(sweep)
    html, md = html.read_text(), md.read_text()
    p = _assert_self_contained(html)
    assert len(p.src) == 1 and "variants/original/report.html" in p.href
    assert "variants/l2-0.01/report.html" not in p.href  # that variant has no report yet
    top = _top(html)
    assert "Undefended: Elevated leakage" in top and "Best defence: Low leakage" in top
    assert "<b>l2-0.01</b>, lowers this to <b>1.5±0.3%</b> at 84.0% test accuracy (test accuracy −1.3 pts)" in top
    assert "original+logit-reweighting" in html and "Not finished: never-ran" in html
    assert "| [original](variants/original/report.html) |" in md and "![utility privacy](figures/utility_privacy.png)" in md
    assert str(tmp_path) not in html and str(tmp_path) not in md
    assert rebuild_report(sweep)[0].read_text() == html


def test_formats_are_one_place():
    from miaudit.report.summary import pct as summary_pct
    from miaudit.report.summary import pct_ci as summary_pct_ci

    assert summary_pct is fmt.pct and summary_pct_ci is fmt.pct_ci
    assert fmt.pct_ci(0.0769, [0.0736, 0.0818]) == "7.7±0.4%" and fmt.pct_range([0.0736, 0.0818]) == "7.4–8.2%"
    assert fmt.pct(float("nan")) == "n/a" and fmt.pct_ci(0.5, [None, 0.6]) == "50.0%"
    assert fmt.count(1e4) == "10,000" and fmt.one_in(0.01) == "1-in-100" and fmt.fpr_label("0.0001") == "0.01%"


@pytest.mark.slow
def test_a_real_tiny_run_writes_its_report(tmp_path, tiny_overrides):
    from miaudit.config import load_config
    from miaudit.runner import run_audit

    out = tmp_path / "run"
    run_audit(load_config(None, tiny_overrides + ["audit.bootstrap=50"]), out)
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    p = _assert_self_contained(html)
    assert p.ids == ["verdict", "setup", "attacks", "vulnerable"]
    results = json.loads((out / "results.json").read_text())
    figures = {"figures/roc.png", *results["vulnerability"]["figures"]}
    assert len(p.src) == len(figures) >= 3  # roc, tsne, deciles: each embedded once
    assert "badge badge-" in html and "of a model's training records as members" in html
    assert "vulnerable_records.csv" in p.href and str(tmp_path) not in html + md
    for name in results["attacks"]:
        assert f"<code>{name}</code>" in html and f"`{name}`" in md
    before = (out / "report.html").read_bytes()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_bytes() == before  # rebuilt from the files alone, byte for byte
