"""The sections of a run's page: each only with its data, unreliable figures footnoted, figures
embedded from inside the run directory only, no absolute path, the top-records table (the score that
orders records tied at the vulnerability's ceiling; issue 16), skipped measures of a signals audit."""

from __future__ import annotations

import csv
import json

from fake_run import VULNERABILITY, make_run
from report_pages import assert_self_contained, parse_page

from miaudit.report.render import render
from miaudit.report.run_page import build_context


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
    ids = parse_page(html).ids
    assert ids == ["verdict", "setup", "attacks"]
    assert "Vulnerable records" not in html and "## 4." not in md

    full = make_run(tmp_path / "full", defences=True)
    html, md = render(build_context(full))
    assert parse_page(html).ids == ["verdict", "setup", "attacks", "vulnerable", "defences"]
    assert "## 5. Defences" in md and "## 4. Vulnerable records" in md
    d = html.split('id="defences"')[1]
    assert "Against an attacker who knows the defence (adaptive), the strongest attack identifies <b><span" in d
    assert "3.1±0.3%" in d and "non-adaptive" in d and "label-only" in d

    none = make_run(tmp_path / "none", vulnerability=False, extra_results={"attacks": {}})
    html, _ = render(build_context(none))
    assert "No attack results" in html and parse_page(html).ids == ["verdict", "setup"]


def test_figures_are_embedded_nothing_is_requested_from_another_host(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    p = assert_self_contained(html)
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




def test_top_records_show_the_tie_breaking_score_in_the_csv_order(tmp_path):
    root = make_run(tmp_path / "run")
    rows = [["record_id", "label", "class_name", "vulnerable", "vulnerability", "score_beyond_nonmembers",
             "tp_count", "n_in_targets", "predicted_out", "reason"]]
    for i, beyond in enumerate([31.25, 9.876, 2.5]):  # all at the ceiling 4.00: only the last column orders them
        rows.append([500 + i, 0, "c0", 1, 4.00219, beyond, 4, 4, 1, "hard"])
    with open(root / "vulnerable_records.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ctx = build_context(root)
    table = ctx["vulnerability"]["records"]
    assert table["has_beyond"] and [r["beyond"] for r in table["rows"]] == ["31.2", "9.88"]  # top_k = 2
    html, md = render(ctx)
    assert "<th class=\"num\">score beyond non-members</th>" in html and "<td class=\"num\">9.88</td>" in html
    assert "| 4.00 | 31.2 |" in md


def test_a_run_without_the_column_keeps_the_old_table(tmp_path):
    ctx = build_context(make_run(tmp_path / "run"))
    assert not ctx["vulnerability"]["records"]["has_beyond"]
    html, _ = render(ctx)
    assert "score beyond non-members" not in html and "Not computed from signals alone" not in html


def test_skipped_measures_of_a_signals_audit_are_listed(tmp_path):
    v = dict(VULNERABILITY, skipped_measures={"lof": "needs features"}, skipped_figures={"tsne.png": "needs features"})
    html, md = render(build_context(make_run(tmp_path / "run", extra_results={"vulnerability": v})))
    assert "Not computed from signals alone" in html and "<code>lof</code> (needs features)" in html
    assert "`tsne.png` (needs features)" in md
