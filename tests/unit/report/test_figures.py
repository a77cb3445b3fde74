"""The analysis figure writers produce PNG files that record what they drew (tiny inputs)."""

import numpy as np

from miaudit.report import figures as figs


def test_figures_are_png(tmp_path, rng):
    emb = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(8, 1, (60, 2))])
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    hl = np.zeros(120, bool)
    hl[:3] = True
    figs.plot_tsne(emb, y, hl, ("a", "b"), tmp_path / "t.png", title="t")
    figs.plot_gallery([{"image": rng.random((1, 8, 8)), "title": "x", "typical": [(rng.random((1, 8, 8)), "y")]}],
                      tmp_path / "g.png", suptitle="g")
    figs.plot_gradcam(rng.random((2, 3, 8, 8)), rng.random((2, 8, 8)), ["a", "b"], rng.random((2, 3, 8, 8)),
                      rng.random((2, 8, 8)), ["c", "d"], tmp_path / "c.png", suptitle="c")
    rows = [{"bin": 0, "lo": 0.0, "hi": 1.0, "n_records": 5, "tpr": 0.1, "fpr": 0.01}]
    figs.plot_deciles({"m1": rows, "m2": rows}, 0.01, "loss", tmp_path / "d.png")
    for name in ("t", "g", "c", "d"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tsne_with_many_classes_colours_by_atypicality_and_says_vulnerable_points_are_over_sampled(tmp_path, rng):
    n = 400
    emb = rng.normal(size=(n, 2))
    labels = rng.integers(0, 100, n)
    hl = np.zeros(n, bool)
    hl[:40] = True  # 10% drawn
    meta = figs.plot_tsne(emb, labels, hl, tuple(f"c{k}" for k in range(100)), tmp_path / "t.png", title="t",
                          values=rng.random(n), values_label="distance to class centroid", share_all=0.02)
    assert figs.plot_metadata(tmp_path / "t.png") == meta
    assert meta["colour_by"] == "distance to class centroid"
    assert len(meta["legend_labels"]) == 1 and "over-sampled x5.0" in meta["legend_labels"][0]
    assert "10.0% of the points drawn, 2.0% of all records" in meta["legend_labels"][0]
    # few classes: coloured by class, one legend entry per class; drawn at the true rate: no over-sampling claim
    few = figs.plot_tsne(emb, labels % 3, hl, ("a", "b", "c"), tmp_path / "t3.png", title="t",
                         values=rng.random(n), values_label="d", share_all=0.1)
    assert few["colour_by"] == "class" and few["legend_labels"][1:] == ["a", "b", "c"]
    assert "over-sampled" not in few["legend_labels"][0]


def test_gallery_shows_typical_records_beside_each_vulnerable_one_and_gradcam_has_a_colour_bar(tmp_path, rng):
    groups = [{"image": rng.random((1, 8, 8)), "title": f"#{i} Bag\nmodel 0 (IN): Bag", "meta": {"record_id": i},
               "typical": [(rng.random((1, 8, 8)), f"typical #{100 + i}", {"record_id": 100 + i}),
                           (rng.random((1, 8, 8)), f"typical #{200 + i}", {"record_id": 200 + i})]} for i in range(3)]
    figs.plot_gallery(groups, tmp_path / "g.png", suptitle="g")
    meta = figs.plot_metadata(tmp_path / "g.png")
    assert [p["role"] for p in meta["panels"]] == ["vulnerable", "typical", "typical"] * 3
    assert [p["record_id"] for p in meta["panels"][:3]] == [0, 100, 200] and meta["title_fontsize"] >= 8
    figs.plot_gradcam(rng.random((2, 3, 8, 8)), rng.random((2, 8, 8)), ["a", "b"], rng.random((2, 3, 8, 8)),
                      rng.random((2, 8, 8)), ["c", "d"], tmp_path / "c.png", suptitle="c", meta={"model": 3})
    cam = figs.plot_metadata(tmp_path / "c.png")
    assert cam["model"] == 3 and cam["colorbar"].startswith("Grad-CAM relevance") and cam["typical_titles"] == ["c", "d"]
