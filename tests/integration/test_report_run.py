"""A real tiny run writes its report: every section with data, every figure embedded once,
nothing external, and ``miaudit report`` rebuilds it byte for byte from the files alone."""

from __future__ import annotations

import json

import pytest
from report_pages import assert_self_contained

from miaudit.cli import main


@pytest.mark.slow
def test_a_real_tiny_run_writes_its_report(tmp_path, tiny_overrides):
    from miaudit.pipeline.configure import load_config
    from miaudit.pipeline.run import run_audit

    out = tmp_path / "run"
    run_audit(load_config(None, tiny_overrides + ["audit.bootstrap=50"]), out)
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    p = assert_self_contained(html)
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
