"""`miaudit sweep`: variants as full runs, the tables and figure, resuming, and the shipped configs."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import miaudit.pipeline.sweep
from miaudit.config import apply_overrides
from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError
from miaudit.pipeline.sweep import expand_sweep, load_sweep, run_sweep

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


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


def test_grid_names_variant_references_and_layering(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": {"train": {"epochs": 3}},
        "set": ["pool.n_models=4"],
        "variants": [
            {"name": "original"},
            {"name": "rd-{rate}-{weight_decay}", "recipes": ["regdrop"],
             "grid": {"regdrop.rate": [0.25, 0.5], "regdrop.weight_decay": [1e-3]}},
            {"name": "ep", "grid": {"train.epochs": [5, 7]}},
            {"name": "t", "recipes": [{"name": "targeted-augmentation", "params": {"ranking_from": "variant:original"}}]},
        ],
    }))
    s, base = load_sweep(sweep)
    vs = expand_sweep(s, base, out=tmp_path / "o", overrides=["seed=3"])
    assert [v.name for v in vs] == ["original", "rd-0.25-0.001", "rd-0.5-0.001", "ep-5", "ep-7", "t"]
    assert all(v.config.pool.n_models == 4 and v.config.seed == 3 for v in vs)
    assert vs[2].config.model.params["dropout"] == 0.5 and vs[2].config.train.weight_decay == 1e-3
    assert vs[4].config.train.epochs == 7 and vs[0].config.train.epochs == 3
    ranking = vs[5].config.train.recipes[0].params["ranking_from"]
    assert Path(ranking) == (tmp_path / "o" / "variants" / "original").resolve()
    bad = tmp_path / "b.yaml"
    bad.write_text(yaml.safe_dump({"variants": [{"name": "t", "recipes": [
        {"name": "targeted-augmentation", "params": {"ranking_from": "variant:later"}}]}, {"name": "later"}]}))
    with pytest.raises(ConfigError, match="no earlier variant named 'later'"):
        expand_sweep(*load_sweep(bad), out=tmp_path / "o")


@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_expand(path, tmp_path):
    s, base = load_sweep(path)
    variants = expand_sweep(s, base, out=tmp_path, source=str(path))
    assert len(variants) >= 2 and variants[0].config.train.recipes == []


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_run_configs_load(path):
    load_config(path)


def test_study_grid_is_in_the_purchase100_sweep(tmp_path):
    s, base = load_sweep(CONFIGS / "sweeps" / "purchase100-study.yaml")
    vs = {v.name: v.config for v in expand_sweep(s, base, out=tmp_path)}
    assert {"original", "early-stopping", "l2-0.0005", "l2-0.001", "l2-0.005", "regdrop-0.25", "regdrop-0.5",
            "label-smoothing", "dp-sgd"} <= set(vs)
    assert vs["regdrop-0.5"].train.weight_decay == 5e-4 and vs["regdrop-0.5"].model.params["dropout"] == 0.5
    assert vs["label-smoothing"].train.label_smoothing == 0.03
    assert vs["dp-sgd"].train.recipes[0].params["target_epsilon"] == 2.4
    assert all(c.model.name == "fcn" and c.data.name == "purchase100" for c in vs.values())
