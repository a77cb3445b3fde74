"""`miaudit run` end to end on a tiny config: outputs, resume, refusal of a different config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import miaudit.pipeline.pool
from miaudit.pipeline.configure import load_config
from miaudit.errors import RunDirError
from miaudit.pipeline.run import run_audit

pytestmark = pytest.mark.slow


def test_run_writes_results_and_rerun_reuses_every_model(tmp_path, tiny_overrides, monkeypatch):
    cfg = load_config(None, tiny_overrides)
    out = tmp_path / "run"
    res = run_audit(cfg, out)
    assert (out / "results.json").is_file() and (out / "summary.txt").is_file()
    assert (out / "config.resolved.yaml").is_file() and (out / "timing.json").is_file()
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["config"]["seed"] == 0 and "torch" in on_disk["versions"]
    assert 0 <= on_disk["utility"]["train_acc"] <= 1 and 0 <= on_disk["utility"]["test_acc"] <= 1
    for name in ("loss", "lira-online-fixed", "lira-offline-fixed"):
        r = on_disk["attacks"][name]
        assert 0 <= r["auc"] <= 1 and 0 <= r["advantage"] <= 1
        assert set(r["tpr_at_fpr"]) == {"0.0", "0.0001", "0.001", "0.01", "0.1"}
        assert len(r["per_target"]) == 4
    # docs/results.md documents every key a run writes
    schema = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    undocumented = [k for k in on_disk if f"`{k}`" not in schema]
    undocumented += [k for k in on_disk["attacks"]["loss"] if f"`{k}`" not in schema]
    undocumented += [k for k in on_disk["attacks"]["loss"]["per_target"][0] if f"`{k}`" not in schema]
    undocumented += [k for k in on_disk.get("vulnerability", {}) if f"`{k}`" not in schema]
    assert undocumented == []
    in_mask = np.load(out / "signals" / "in_mask.npy")
    assert (in_mask.sum(0) == 2).all()
    # models trained well past chance on the tiny task
    assert res["utility"]["train_acc"] > 0.8

    calls = []
    monkeypatch.setattr(miaudit.pipeline.pool, "train_model", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError("retrained")))
    res2 = run_audit(cfg, out)
    assert calls == []
    assert json.dumps(res2, sort_keys=True) == json.dumps(res, sort_keys=True)

    # a changed attack list reuses the models; a changed training config is refused
    run_audit(load_config(None, tiny_overrides + ["audit.attacks=[loss]"]), out)
    with pytest.raises(RunDirError, match="different"):
        run_audit(load_config(None, tiny_overrides + ["train.epochs=3"]), out)


def test_cli_bad_config_key_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "run", "--set", "train.epochz=3", "--out", str(tmp_path / "r")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("miaudit: error:") and "train.epochz: unknown key" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
