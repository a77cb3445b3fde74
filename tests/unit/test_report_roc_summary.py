"""The ROC figure (agrees with TPR@FPR, written as a PNG) and the summary table (CIs, * marks)."""

import numpy as np

from miaudit.metrics import attack_metrics, tpr_at_fpr_from_roc
from miaudit.report.roc import average_roc, write_roc_figure
from miaudit.report.summary import format_summary, pct_ci


def test_average_roc_is_the_mean_tpr_at_fpr_without_interpolation(rng):
    curves = []
    for _ in range(3):
        m = rng.random(500) < 0.5
        r = attack_metrics(np.round(rng.normal(size=500) + m, 1), m, (0.01,))
        curves.append((r.roc_fpr, r.roc_tpr))
    grid = np.geomspace(1e-3, 1, 40)
    expect = [np.mean([tpr_at_fpr_from_roc(f, t, a) for f, t in curves]) for a in grid]
    assert np.allclose(average_roc(curves, grid), expect)


def test_roc_figure_is_a_png(tmp_path, rng):
    m = rng.random(300) < 0.5
    r = attack_metrics(rng.normal(size=300) + m, m, (0.001,))
    path = write_roc_figure(
        tmp_path / "figures" / "roc.png", {"loss": [(r.roc_fpr, r.roc_tpr)]},
        {"loss": {"auc": r.auc, "tpr_at_fpr": {"0.001": 0.0}, "knowledge": "none"}},
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]  # no temporary left behind


def test_summary_shows_half_width_and_keeps_unreliable_marks():
    assert pct_ci(0.731, [0.727, 0.735]) == "73.1±0.4%"
    assert pct_ci(0.5, None) == "50.0%"
    results = {
        "config": {"audit": {"bootstrap": 200}},
        "attacks": {
            "loss": {
                "auc": 0.71, "advantage": 0.3, "knowledge": "none",
                "tpr_at_fpr": {"0.001": 0.002, "0.01": 0.02},
                "reliable": {"0.001": False, "0.01": True},
                "ci95": {"auc": [0.70, 0.72], "advantage": [0.29, 0.31],
                         "tpr_at_fpr": {"0.001": [0.0, 0.004], "0.01": [0.015, 0.025]}},
            }
        },
    }
    text = format_summary(results)
    assert "71.0±1.0%" in text and "0.2±0.2%*" in text and "2.0±0.5%" in text
    assert "(200 resamples)" in text and "* backed by fewer" in text
