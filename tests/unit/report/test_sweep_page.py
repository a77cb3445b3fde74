"""The sweep's report page: its table, Pareto front and verdict, from the sweep directory's files."""

from __future__ import annotations

import json

import yaml
from fake_run import attack_result, make_run, write_png
from report_pages import assert_self_contained, verdict_box

from miaudit.report.render import rebuild_report, write_report, write_sweep_report


def test_sweep_report_table_pareto_front_and_verdict(tmp_path):
    sweep = tmp_path / "sweep"
    base = make_run(sweep / "variants" / "original", vulnerability=False, defences=True)
    res = json.loads((base / "results.json").read_text())
    res["config"]["train"]["recipes"] = []
    (base / "results.json").write_text(json.dumps(res))
    l2 = make_run(sweep / "variants" / "l2-0.01", vulnerability=False)
    res2 = json.loads((l2 / "results.json").read_text())
    res2["attacks"]["lira-online-fixed"] = attack_result(0.6, 0.015, [0.012, 0.018], 0.002, "online")
    res2["utility"] = {"train_acc": 0.95, "test_acc": 0.84}
    (l2 / "results.json").write_text(json.dumps(res2))
    write_report(base)
    (sweep / "sweep.resolved.yaml").write_text(yaml.safe_dump({"variants": [{"name": "original"}, {"name": "l2-0.01"},
                                                                             {"name": "never-ran"}]}))
    write_png(sweep / "figures" / "utility_privacy.png")
    html, md = write_sweep_report(sweep)
    html, md = html.read_text(), md.read_text()
    p = assert_self_contained(html)
    assert len(p.src) == 1 and "variants/original/report.html" in p.href
    assert "variants/l2-0.01/report.html" not in p.href  # that variant has no report yet
    top = verdict_box(html)
    assert "Undefended: Elevated leakage" in top and "Best defence: Low leakage" in top
    assert "<b>l2-0.01</b>, lowers this to <b>1.5±0.3%</b> at 84.0% test accuracy (test accuracy −1.3 pts)" in top
    assert "original+logit-reweighting" in html and "Not finished: never-ran" in html
    assert "| [original](variants/original/report.html) |" in md and "![utility privacy](figures/utility_privacy.png)" in md
    assert str(tmp_path) not in html and str(tmp_path) not in md
    assert rebuild_report(sweep)[0].read_text() == html
