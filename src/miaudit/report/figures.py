"""The analysis figures (matplotlib, Agg backend; PNG written atomically).

- ``tsne.png``: t-SNE of one model's penultimate features, coloured by class (by an atypicality
  measure when there are many classes), vulnerable records circled.
- ``deciles.png``: attack TPR beside FPR at α (95% intervals) by quantile bin of each outlier measure.
- ``gallery.png`` (images): the top vulnerable records, each beside typical records of its class,
  with the label and the predictions of one named model and of the models that never saw it.
- ``gradcam.png`` (images): the top-k vulnerable records and a typical record of each one's class,
  side by side with their Grad-CAM maps (the gallery's model), with a colour bar.

Each figure records what it drew (series, colours, legend labels, titles) as JSON in its PNG's
``miaudit:plot`` text chunk (:func:`plot_metadata`), so tests check figures without pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.io import atomic_path


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


#: key of the PNG text chunk in which a figure records what it drew (series, colours, legend labels):
#: for tests and tools that check a figure without reading pixels
PLOT_METADATA_KEY = "miaudit:plot"


def save_figure(fig, path: Path, meta: dict | None = None) -> None:  # noqa: ANN001
    """Write ``fig`` as a PNG atomically, with ``meta`` as JSON in its ``miaudit:plot`` text chunk."""
    import json

    plt = _plt()
    extra = {"metadata": {PLOT_METADATA_KEY: json.dumps(meta, default=_jsonable)}} if meta is not None else {}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", **extra)
    plt.close(fig)


def _jsonable(x):  # noqa: ANN001, ANN202
    return x.item() if isinstance(x, np.generic) else (x.tolist() if isinstance(x, np.ndarray) else str(x))


def plot_metadata(path: Path | str) -> dict:
    """What a miaudit figure recorded about itself (its ``miaudit:plot`` PNG text chunk), or {}."""
    import json

    from PIL import Image

    with Image.open(path) as im:
        text = getattr(im, "text", {}).get(PLOT_METADATA_KEY)
    return json.loads(text) if text else {}


def _class_colours(n_classes: int):  # noqa: ANN202
    plt = _plt()
    if n_classes <= 10:
        cmap = plt.get_cmap("tab10")
        return [cmap(i) for i in range(n_classes)]
    if n_classes <= 20:
        cmap = plt.get_cmap("tab20")
        return [cmap(i) for i in range(n_classes)]
    cmap = plt.get_cmap("nipy_spectral")
    order = np.random.default_rng(0).permutation(n_classes)  # neighbouring classes get distant hues
    return [cmap(0.05 + 0.9 * order[i] / max(1, n_classes - 1)) for i in range(n_classes)]


#: above this many classes a class colour per point is unreadable: colour by an atypicality measure
MAX_CLASS_COLOURS = 10


def plot_tsne(
    emb: np.ndarray,
    labels: np.ndarray,
    highlight: np.ndarray,
    class_names: tuple[str, ...],
    path: Path,
    *,
    title: str,
    note: str = "",
    values: np.ndarray | None = None,
    values_label: str = "",
    share_all: float | None = None,
) -> dict:
    """Scatter of a 2-D map, highlighted (vulnerable) records circled in black.

    With at most :data:`MAX_CLASS_COLOURS` classes (or no ``values``) points are coloured by class;
    with more, by ``values`` (e.g. distance to the class centroid) on a colour bar named
    ``values_label``. The legend says how the highlighted records were sampled: their share
    among the points drawn and, given ``share_all``, among all records (over-sampled when rare).
    Returns what was drawn (also stored in the PNG's ``miaudit:plot`` chunk).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    h = np.asarray(highlight, bool)
    by_class = values is None or len(class_names) <= MAX_CLASS_COLOURS
    if by_class:
        colours = _class_colours(len(class_names))
        ax.scatter(emb[:, 0], emb[:, 1], c=[colours[int(k)] for k in labels], s=7, alpha=0.75, linewidths=0)
    else:
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        lo, hi = (np.nanpercentile(v[ok], [2, 98]) if ok.any() else (0.0, 1.0))
        ax.scatter(emb[~ok, 0], emb[~ok, 1], c="0.8", s=7, linewidths=0)
        sc = ax.scatter(emb[ok, 0], emb[ok, 1], c=v[ok], cmap="viridis", vmin=lo, vmax=hi, s=7, alpha=0.8,
                        linewidths=0)
        cb = fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.02)
        cb.set_label(values_label, fontsize=9)
    share_drawn = float(h.mean()) if len(h) else 0.0
    hl_label = f"vulnerable, circled ({int(h.sum())}): {share_drawn:.1%} of the points drawn"
    if share_all is not None:
        hl_label += f", {share_all:.1%} of all records"
        if share_drawn > 1.05 * share_all:
            hl_label += f"\n(over-sampled x{share_drawn / max(share_all, 1e-12):.1f} so they stay visible)"
    circled = ax.scatter(emb[h, 0], emb[h, 1], s=34, facecolors="none", edgecolors="black", linewidths=0.7,
                         alpha=0.85, label=hl_label)
    # the sampling note below the map, full width; the classes (if coloured by class) beside it
    legends = [ax.legend(handles=[circled], loc="upper left", bbox_to_anchor=(0.0, -0.01), fontsize=8.5,
                         frameon=False)]
    if by_class:  # a figure legend (an axes holds one legend, and tight bounding boxes see figure legends)
        handles = [ax.scatter([], [], color=colours[k], s=20, label=name) for k, name in enumerate(class_names)]
        legends.append(fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                  bbox_transform=ax.transAxes, fontsize=8.5, frameon=False, title="class",
                                  title_fontsize=8.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    meta = {"colour_by": "class" if by_class else values_label, "n_points": int(len(emb)),
            "n_highlighted": int(h.sum()), "share_highlighted_drawn": share_drawn, "share_highlighted_all": share_all,
            "legend_labels": [t.get_text() for lg in legends for t in lg.get_texts()]}
    save_figure(fig, path, meta)
    return meta


def edge_labels(edges: list[float]) -> list[str]:
    """Tick labels for bin edges with the fewest significant digits (2 to 6) that keep them distinct.

    >>> edge_labels([1.101, 1.104, 1.12])
    ['1.101', '1.104', '1.12']
    """
    for digits in range(2, 7):
        labels = [f"{e:.{digits}g}" for e in edges]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def plot_deciles(tables: dict[str, list[dict]], alpha: float, attack: str, path: Path) -> None:
    """One panel per measure: TPR (bars) and FPR (line) at α by quantile bin, 95% intervals, chance line α.

    The leak a measure explains is the gap between the two (TPR − FPR): atypical records are
    flagged more when they were not trained on as well.
    """
    plt = _plt()
    names = list(tables)
    cols = 3
    rows = int(np.ceil(len(names) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        t = tables[name]
        x = np.arange(len(t))

        def err(key: str, centre: str) -> np.ndarray:
            lo = [r[centre] - (r.get(key) or [r[centre]] * 2)[0] for r in t]
            hi = [(r.get(key) or [r[centre]] * 2)[1] - r[centre] for r in t]
            return np.maximum(0.0, np.array([lo, hi]))

        ax.bar(x, [r["tpr"] for r in t], yerr=err("tpr_ci95", "tpr"), color="tab:red", alpha=0.8,
               error_kw={"lw": 0.8, "capsize": 2}, label="TPR (members flagged)")
        ax.errorbar(x, [r["fpr"] for r in t], yerr=err("fpr_ci95", "fpr"), fmt="k.-", lw=1, capsize=2,
                    label="FPR (non-members flagged)")
        ax.axhline(alpha, color="0.4", ls="--", lw=0.8, label=f"α = {alpha:g}")
        ax.set_xticks(x)
        ax.set_xticklabels(edge_labels([r["hi"] for r in t]), fontsize=6, rotation=45)
        n_bins = t[0].get("n_bins", len(t)) if t else 0
        merged = f", {n_bins} bins: tied values merge deciles" if t and n_bins < 10 else ""
        ax.set_title(f"{name}{merged}", fontsize=8.5)
        ax.set_xlabel("quantile bin of the measure (upper edge)", fontsize=7)
        ax.set_ylabel(f"share flagged at FPR {alpha:g}", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6.5)
    fig.suptitle(
        f"{attack}: share of (record, target) pairs flagged at FPR {alpha:g}, by quantile bin of each outlier "
        "measure; the leak is TPR − FPR (95% intervals: records resampled)", fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)


def _show(ax, img: np.ndarray) -> None:  # noqa: ANN001
    img = np.asarray(img, dtype=np.float32)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(np.transpose(img, (1, 2, 0)), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def plot_gallery(
    groups: list[dict], path: Path, *, suptitle: str, per_row: int = 2
) -> dict:
    """Vulnerable records, each beside typical records of its own class.

    ``groups``: one dict per vulnerable record with ``image`` (C, H, W), ``title`` and ``typical``:
    a list of (image, title) of the same class. Each group takes one cell of ``per_row`` per row:
    the vulnerable record framed in red, then its typical records. Returns what was drawn (also
    stored in the PNG's ``miaudit:plot`` chunk).
    """
    plt = _plt()
    n_typ = max((len(g["typical"]) for g in groups), default=0)
    width = 1 + n_typ
    rows = max(1, int(np.ceil(len(groups) / per_row)))
    cols = per_row * width
    # ~1,000 px wide at 110 dpi: the report page (about 1,000 px) shows it at full size, titles at 8.5 pt
    fig, axes = plt.subplots(rows, cols, figsize=(1.55 * cols, 2.45 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    drawn = []
    for g_i, g in enumerate(groups):
        r, c0 = divmod(g_i, per_row)
        c0 *= width
        ax = axes[r, c0]
        ax.axis("on")
        _show(ax, g["image"])
        for side in ax.spines.values():
            side.set_edgecolor("tab:red")
            side.set_linewidth(2.5)
        ax.set_title(g["title"], fontsize=8.5, color="darkred")
        drawn.append({"role": "vulnerable", "title": g["title"], **g.get("meta", {})})
        for j, (img, title, *m) in enumerate(g["typical"]):
            ax = axes[r, c0 + 1 + j]
            ax.axis("on")
            _show(ax, img)
            ax.set_title(title, fontsize=8.5)
            drawn.append({"role": "typical", "title": title, **(m[0] if m else {})})
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    meta = {"panels": drawn, "title_fontsize": 8.5}
    save_figure(fig, path, meta)
    return meta


def plot_gradcam(
    vuln_images: np.ndarray,
    vuln_maps: np.ndarray,
    vuln_titles: list[str],
    typical_images: np.ndarray,
    typical_maps: np.ndarray,
    typical_titles: list[str],
    path: Path,
    *,
    suptitle: str,
    meta: dict | None = None,
) -> dict:
    """Rows of: vulnerable image, its Grad-CAM overlay, a typical image of its class, its overlay;
    one colour bar for the maps (each scaled to [0, 1] per image). Returns what was drawn."""
    plt = _plt()
    n = len(vuln_images)
    fig, axes = plt.subplots(max(1, n), 4, figsize=(9.0, 2.35 * max(1, n)), squeeze=False)
    im = None
    for r in range(n):
        for col, (img, cam, title) in enumerate(
            ((vuln_images[r], vuln_maps[r], vuln_titles[r]), (typical_images[r], typical_maps[r], typical_titles[r]))
        ):
            a_img, a_cam = axes[r, 2 * col], axes[r, 2 * col + 1]
            _show(a_img, img)
            a_img.set_title(title, fontsize=8)
            _show(a_cam, img)
            im = a_cam.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            a_cam.set_title("Grad-CAM", fontsize=8)
    axes[0, 0].set_title("VULNERABLE\n" + axes[0, 0].get_title(), fontsize=8)
    axes[0, 2].set_title("TYPICAL (same class)\n" + axes[0, 2].get_title(), fontsize=8)
    fig.suptitle(suptitle, fontsize=9.5)
    height = 2.35 * max(1, n)
    fig.tight_layout(rect=(0, 0, 0.9, 1 - 0.55 / height))  # room for the two-line title above the column heads
    colorbar = None
    if im is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        cax = fig.add_axes((0.92, 0.15, 0.02, 0.7))
        cb = fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="jet"), cax=cax)  # opaque, unlike the overlays
        colorbar = "Grad-CAM relevance toward the label (0 = none, 1 = the image's peak)"
        cb.set_label(colorbar, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    drawn = {**(meta or {}), "colorbar": colorbar, "vulnerable_titles": list(vuln_titles),
             "typical_titles": list(typical_titles)}
    save_figure(fig, path, drawn)
    return drawn
