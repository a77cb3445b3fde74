"""`miaudit sweep`: variants as full runs, the tables and figure, resuming (sweep files: unit/pipeline/test_sweep.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import miaudit.pipeline.sweep
from miaudit.config import apply_overrides
from miaudit.errors import ConfigError
from miaudit.pipeline.sweep import run_sweep


def write_sweep(path: Path, tiny_overrides: list[str], variants: list[dict]) -> Path:
    base = apply_overrides({}, tiny_overrides + ["analysis.vulnerability=false", "audit.bootstrap=20",
                                                  "audit.attacks=[loss, lira-offline-fixed, rmia-offline]"])
    path.write_text(yaml.safe_dump({"base": base, "variants": variants}))
    return path


ORIGINAL = {"name": "original", "defences": ["logit-reweighting"]}
L2 = {"name": "l2-{weight_decay}", "recipes": ["l2"], "grid": {"l2.weight_decay": [0.01]}}


@pytest.mark.slow
def test_sweep_runs_variants_writes_tables_and_resumes_without_retraining(tmp_path, tiny_overrides, monkeypatch):
    sweep_file = write_sweep(tmp_path / "sweep.yaml", tiny_overrides, [ORIGINAL, L2])
    out = tmp_path / "out"
    rows = run_sweep(sweep_file, out)
    assert [r["variant"] for r in rows] == ["original", "original+logit-reweighting", "l2-0.01"]
    for name in ("original", "l2-0.01"):
        assert (out / "variants" / name / "results.json").is_file()
    assert (out / "figures" / "utility_privacy.png").stat().st_size > 0
    with open(out / "sweep.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["variant"] for r in table] == ["original", "original+logit-reweighting", "l2-0.01"]
    assert table[2]["recipes"] == "l2" and table[0]["recipes"] == "none"
    for col in ("train_acc", "test_acc", "train_s_per_model", "rmia-offline.auc", "rmia-offline.auc_lo",
                "rmia-offline.tpr@1%", "rmia-offline.tpr@1%_hi", "loss.tpr@0.1%", "loss.advantage"):
        assert table[0][col] != "", col
    assert float(table[0]["rmia-offline.auc_lo"]) <= float(table[0]["rmia-offline.auc"]) <= float(table[0]["rmia-offline.auc_hi"])
    assert any(r["pareto"] == "1" for r in table)
    md = (out / "sweep.md").read_text()
    assert "| original+logit-reweighting |" in md and "## rmia-offline" in md

    # rerun: every variant is finished, nothing runs
    monkeypatch.setattr(miaudit.pipeline.sweep, "run_audit", lambda *a, **k: pytest.fail("a finished variant ran again"))
    assert run_sweep(sweep_file, out) == rows
    monkeypatch.undo()

    # one more variant: only its pool trains (finished members' files are not rewritten)
    before = {p: p.stat().st_mtime_ns for p in out.glob("variants/*/models/member_*")}
    write_sweep(sweep_file, tiny_overrides, [ORIGINAL, L2, {"name": "smooth", "recipes": ["label-smoothing"]}])
    rows3 = run_sweep(sweep_file, out)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(list(out.glob("variants/smooth/models/member_*.json"))) == 4
    assert rows3[:3] == rows and rows3[3]["variant"] == "smooth"


def test_every_variant_is_validated_before_anything_trains(tmp_path, tiny_overrides):
    sweep_file = write_sweep(tmp_path / "sweep.yaml", tiny_overrides, [
        ORIGINAL, {"name": "bad", "recipes": ["l3"]}, {"name": "x", "recipes": ["l2"], "grid": {"l2.weight_decay": [-1]}},
    ])
    with pytest.raises(ConfigError) as exc:
        run_sweep(sweep_file, tmp_path / "out")
    msg = str(exc.value)
    assert "variants[1] (bad)" in msg and "unknown recipe 'l3'" in msg and "variants[2] (x--1)" in msg
    assert not (tmp_path / "out").exists()


def test_cli_sweep_error_is_one_line_exit_2(tmp_path, tiny_overrides):
    sweep_file = write_sweep(tmp_path / "sweep.yaml", tiny_overrides, [{"name": "a b"}])
    proc = subprocess.run([sys.executable, "-m", "miaudit.cli", "sweep", str(sweep_file), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("miaudit: error:") and "name 'a b'" in lines[0]
