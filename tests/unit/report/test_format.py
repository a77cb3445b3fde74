"""The one place numbers are formatted for people (summary.txt, report.html, report.md)."""

from __future__ import annotations

from miaudit.report import format as fmt


def test_formats_are_one_place():
    from miaudit.report.summary import pct as summary_pct
    from miaudit.report.summary import pct_ci as summary_pct_ci

    assert summary_pct is fmt.pct and summary_pct_ci is fmt.pct_ci
    assert fmt.pct_ci(0.0769, [0.0736, 0.0818]) == "7.7±0.4%" and fmt.pct_range([0.0736, 0.0818]) == "7.4–8.2%"
    assert fmt.pct(float("nan")) == "n/a" and fmt.pct_ci(0.5, [None, 0.6]) == "50.0%"
    assert fmt.count(1e4) == "10,000" and fmt.one_in(0.01) == "1-in-100" and fmt.fpr_label("0.0001") == "0.01%"
