"""Sweep files: grids, names, variant references and layering; the shipped sweeps and run configs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError
from miaudit.pipeline.sweep import expand_sweep, load_sweep

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


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
