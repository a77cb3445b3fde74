"""The report's top-records table shows the score that orders records tied at the vulnerability's
ceiling, and an audit of signals says which measures were skipped (issue 16, items 3 and 4)."""

import csv

from miaudit.report.render import build_context, render
from test_report_html import make_run


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
    from test_report_html import VULNERABILITY

    v = dict(VULNERABILITY, skipped_measures={"lof": "needs features"}, skipped_figures={"tsne.png": "needs features"})
    html, md = render(build_context(make_run(tmp_path / "run", extra_results={"vulnerability": v})))
    assert "Not computed from signals alone" in html and "<code>lof</code> (needs features)" in html
    assert "`tsne.png` (needs features)" in md
