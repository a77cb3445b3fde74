"""The ROC figure: agrees with TPR@FPR, written as a PNG, colours by attack family."""

import numpy as np

from miaudit.metrics import attack_metrics, tpr_at_fpr_from_roc
from miaudit.report.roc import average_roc, write_roc_figure


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


def _fake_run(rng, names, n=400):
    curves, results = {}, {}
    for k, name in enumerate(names):
        runs, per = [], []
        for _ in range(2):
            m = rng.random(n) < 0.5
            r = attack_metrics(rng.normal(size=n) + m * (0.3 + 0.1 * k), m, (0.001, 0.01))
            runs.append((r.roc_fpr, r.roc_tpr))
            per.append({"n_nonmembers": int((~m).sum())})
        curves[name] = runs
        results[name] = {"auc": r.auc, "tpr_at_fpr": {"0.001": 0.01}, "knowledge": "none" if k < 2 else "online",
                         "per_target": per}
    return curves, results


def test_roc_colours_by_family_with_a_readable_legend_and_the_unreliable_range_recorded(tmp_path, rng):
    from matplotlib.colors import to_rgb

    from miaudit.report.roc import LEGEND_FONTSIZE, attack_family
    from miaudit.report.figures import plot_metadata

    names = ["loss", "entropy", "calibrated-loss", "lira-online", "lira-offline-fixed", "rmia-online",
             "rmia-offline", "shokri", "label-only-gap", "label-only-augment", "my-plugin-attack"]
    curves, results = _fake_run(rng, names)
    meta = plot_metadata(write_roc_figure(tmp_path / "roc.png", curves, results))
    series = {s["name"]: s for s in meta["series"]}
    assert set(series) == set(names) and LEGEND_FONTSIZE >= 8 and meta["legend_fontsize"] == LEGEND_FONTSIZE
    assert {s["family"] for s in series.values()} == {"threshold", "calibrated", "LiRA", "RMIA", "shokri",
                                                       "label-only", "other"}
    # one hue per family: members differ in shade only; rmia-online and calibrated-loss no longer share a colour
    def hue(c):
        import colorsys

        return colorsys.rgb_to_hsv(*to_rgb(c))[0]

    assert series["lira-online"]["colour"] != series["lira-offline-fixed"]["colour"]
    assert abs(hue(series["lira-online"]["colour"]) - hue(series["lira-offline-fixed"]["colour"])) < 0.05
    assert abs(hue(series["rmia-online"]["colour"]) - hue(series["lira-online"]["colour"])) > 0.2
    assert len({s["colour"] for s in series.values()}) == len(names)
    assert attack_family("label-only-augment") == "label-only" and series["loss"]["linestyle"] == "--"
    # legend grouped by family (members of a family are adjacent), every curve labelled with its AUC
    fams = [s["family"] for s in meta["series"]]
    assert all(fams.index(f) + fams.count(f) - 1 == len(fams) - 1 - fams[::-1].index(f) for f in set(fams))
    assert any(lbl.startswith("TPR unreliable") for lbl in meta["legend_labels"])
    # shaded below 10 / (fewest non-members of any target), the metrics' reliability rule
    fewest = min(t["n_nonmembers"] for r in results.values() for t in r["per_target"])
    assert abs(meta["unreliable_below"] - 10 / fewest) < 1e-12
