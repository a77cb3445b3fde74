"""``data.planted``: the user's own canaries get the enrichment and recall tables (issue 14, item 5)."""

import csv
import warnings

import numpy as np

from miaudit.pipeline.configure import load_config


def _csv(path, rng, n=1000, f=12):
    centres = rng.normal(0, 2.0, (3, f))
    y = rng.integers(0, 3, n)
    x = centres[y] + rng.normal(size=(n, f))
    canaries = rng.choice(n, 40, replace=False)
    y_noisy = y.copy()
    y_noisy[canaries] = (y[canaries] + 1) % 3  # mislabelled: the records a model can only memorise
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"f{i}" for i in range(f)] + ["label"])
        for row, lab in zip(x, y_noisy):
            w.writerow([f"{v:.4f}" for v in row] + [int(lab)])
    return canaries


def test_planted_file_gives_per_kind_tables_for_a_csv_dataset(tmp_path):
    from miaudit.pipeline.run import run_audit

    rng = np.random.default_rng(0)
    canaries = _csv(tmp_path / "d.csv", rng)
    (tmp_path / "canaries.txt").write_text("id,kind\n" + "".join(f"{i},canary\n" for i in canaries))
    cfg = load_config(None, [
        "data.name=csv", f"data.params.path={tmp_path / 'd.csv'}", f"data.planted={tmp_path / 'canaries.txt'}",
        "data.splits.audit=600", "data.splits.population=200", "data.splits.validation=50", "data.splits.test=150",
        "model.name=mlp", "model.params.hidden=[64]", "train.epochs=30", "train.lr=0.003", "train.batch_size=32",
        "pool.n_models=6", "runtime.threads=1", "audit.bootstrap=0", "analysis.tsne=false",
        "audit.attacks=[loss,lira-online-fixed]",
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_audit(cfg, tmp_path / "run")
    kinds = res["vulnerability"]["enrichment"]["kinds"]
    assert set(kinds) == {"canary", "natural", "all-planted"}
    assert 0 < kinds["canary"]["n_audited"] <= 40
    # mislabelled canaries leak far beyond natural records, and beyond their own false alarms
    assert kinds["canary"]["tp_rate"] > 3 * kinds["natural"]["tp_rate"]
    assert kinds["canary"]["excess_rate"] > 0.1
    header = (tmp_path / "run" / "vulnerable_records.csv").read_text().splitlines()[0]
    assert header.endswith("planted")
