"""Gallery and Grad-CAM of a tiny image run (sklearn digits) say the same model, and the truth about it.

Read from the figures' ``miaudit:plot`` PNG metadata (no pixels): both figures name model
``targets[0]``; each record's "trained on it" and prediction agree with the run's own
membership and logits; typical records share the vulnerable record's class and are never flagged.
"""

import csv

import numpy as np
import pytest

from miaudit.pipeline.configure import load_config
from miaudit.pipeline.run import run_audit
from miaudit.report.figures import plot_metadata

pytestmark = pytest.mark.slow

DIGITS = [
    "data.name=digits", "data.splits.audit=400", "data.splits.population=200", "data.splits.validation=50",
    "data.splits.test=200", "model.name=cnn", "model.params.channels=[8,16]", "train.epochs=3",
    "pool.n_models=4", "runtime.threads=1", "audit.bootstrap=0", "audit.attacks=[loss,rmia-offline]",
    "analysis.tsne=false", "analysis.alpha=0.05", "analysis.top_k=6", "analysis.gradcam_k=4",
]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gallery_and_gradcam_show_one_model_and_whether_it_trained_on_each_record(tmp_path):
    out = tmp_path / "run"
    res = run_audit(load_config(None, DIGITS), out)
    v = res["vulnerability"]
    assert {"figures/gallery.png", "figures/gradcam.png"} <= set(v["figures"]), v["set_size"]
    t0 = res["pool"]["targets"][0]
    ids = np.load(out / "signals" / "record_ids.npy")
    row = {int(r): i for i, r in enumerate(ids)}
    in_mask = np.load(out / "signals" / "in_mask.npy")
    pred = np.load(out / "signals" / "audit_logits.npy", mmap_mode="r")[t0, 0].argmax(-1)
    with open(out / "vulnerable_records.csv", newline="") as fh:
        records = {int(r["record_id"]): r for r in csv.DictReader(fh)}

    def truthful(p: dict) -> None:
        i = row[p["record_id"]]
        assert p["model"] == t0
        assert p["model_trained_on_it"] == bool(in_mask[t0, i])
        # digits name their classes "0".."9"
        assert p["model_pred"] == str(int(pred[i])) and p["label"] == records[p["record_id"]]["class_name"]

    gallery = plot_metadata(out / "figures" / "gallery.png")["panels"]
    assert gallery and gallery[0]["role"] == "vulnerable"
    current = None
    for p in gallery:
        truthful(p)
        if p["role"] == "vulnerable":
            current = p
            assert records[p["record_id"]]["vulnerable"] == "1"
        else:  # a typical record of the same class, never flagged by a model that trained on it
            assert p["label"] == current["label"] and records[p["record_id"]]["tp_count"] == "0"
    cam = plot_metadata(out / "figures" / "gradcam.png")
    assert cam["model"] == t0 and cam["colorbar"]
    for p in cam["vulnerable"] + cam["typical"]:
        truthful(p)
        assert p["model_trained_on_it"]  # Grad-CAM explains the model on records it trained on
    assert [p["label"] for p in cam["vulnerable"]] == [p["label"] for p in cam["typical"]]
