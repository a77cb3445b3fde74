"""`miaudit audit --signals`: signals exported from a `miaudit run` give the same figures back."""

import json

import numpy as np
import pytest

from miaudit import audit_signals, export_signals, load_signals_file
from miaudit.cli import main
from miaudit.pipeline.configure import load_config
from miaudit.pipeline.run import run_audit

pytestmark = pytest.mark.slow


def test_signals_round_trip_through_audit(tmp_path, tiny_overrides, capsys):
    cfg = load_config(None, tiny_overrides)
    run_dir = tmp_path / "run"
    res = run_audit(cfg, run_dir)
    assert (run_dir / "figures" / "roc.png").is_file()
    for name, r in res["attacks"].items():
        assert set(r["ci95"]["tpr_at_fpr"]) == set(r["tpr_at_fpr"]) and len(r["ci95"]["auc"]) == 2, name
        assert set(r["ppv"]) == {"0.01", "0.1", "0.5"}, name
        assert np.load(run_dir / "scores" / f"{name}.npy").shape == (4, 600)

    file = tmp_path / "signals.npz"
    assert main(["export-signals", str(run_dir), str(file)]) == 0
    sig = load_signals_file(file)
    assert sig.logits.shape[:3] == (4, 1, 600) and sig.population_logits.shape[2] == 300

    out = tmp_path / "audit"
    assert main(["audit", "--signals", str(file), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    back = json.loads((out / "results.json").read_text())
    ran = json.loads((run_dir / "results.json").read_text())
    assert json.dumps(back["attacks"], sort_keys=True) == json.dumps(ran["attacks"], sort_keys=True)
    assert back["skipped_attacks"] == ran["skipped_attacks"]
    assert back["utility"]["train_acc"] == ran["utility"]["train_acc"]
    assert back["utility"]["test_acc"] == ran["utility"]["test_acc"]
    for name in ran["attacks"]:
        assert np.array_equal(np.load(out / "scores" / f"{name}.npy"), np.load(run_dir / "scores" / f"{name}.npy"))
    assert (out / "figures" / "roc.png").is_file() and "rmia-offline" in printed
    # the per-record analysis from the signals alone agrees with the run's wherever it needs no features
    bv, rv = back["vulnerability"], ran["vulnerability"]
    for key in ("attack", "set_size", "chance_expected", "p_value", "stability", "vulnerable_per_attack"):
        assert bv[key] == rv[key], key
    for name in ("confidence_out", "margin_out", "memorisation"):
        assert bv["statistics"][name] == rv["statistics"][name], name
    assert set(bv["skipped_measures"]) == {"centroid_distance", "knn_disagreement", "lof"}
    assert (out / "vulnerable_records.csv").is_file() and "vulnerable records" in printed

    # the Python API gives the same figures without writing anything
    api = audit_signals(file, None, load_config(None, ["pool.n_models=4", "audit.attacks=[loss,rmia-offline]"]))
    for name in ("loss", "rmia-offline"):
        assert api["attacks"][name] == back["attacks"][name]

    # a rerun of the same audit reuses the directory; other signals are refused without --force
    assert main(["audit", "--signals", str(file), "--out", str(out), "--quiet", "--set", "audit.attacks=[loss]"]) == 0
    other = tmp_path / "other.npz"
    export_signals(run_dir, other)
    arrays = dict(np.load(other))
    arrays["labels"] = (arrays["labels"] + 1) % 5
    np.savez(other, **arrays)
    capsys.readouterr()
    assert main(["audit", "--signals", str(other), "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err


def test_audit_cli_bad_file_is_one_line_exit_2(tmp_path, capsys, rng):
    path = tmp_path / "bad.npz"
    np.savez(path, logits=rng.normal(size=(4, 10, 3)).astype(np.float32), labels=np.arange(10) % 3,
             in_mask=np.ones((4, 9), bool))
    assert main(["audit", "--signals", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("miaudit: error: in_mask: expected shape (4, 10)")
    assert not (tmp_path / "o").exists()
