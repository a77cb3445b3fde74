"""Reading a run or sweep directory for its report: what is required, what may be missing, and
what of the machine a page may show (no absolute path, no file outside the run directory)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from fake_run import make_run, write_png

from miaudit.errors import DataError
from miaudit.report.load import figure, load_run, rebuild_path, safe, scrub, sweep_variants


def test_a_run_needs_its_results_and_nothing_else(tmp_path, caplog):
    with pytest.raises(DataError, match="not a finished miaudit run directory"):
        load_run(tmp_path)
    root = make_run(tmp_path / "run", vulnerability=False)
    res = json.loads((root / "results.json").read_text())
    config = res.pop("config")
    (root / "results.json").write_text(json.dumps(res))
    (root / "timing.json").write_text("{not json")
    (root / "run.json").unlink()
    with caplog.at_level(logging.WARNING, logger="miaudit.report.load"):
        run = load_run(root)
    assert run["config"] == config  # an older results.json without its config: config.resolved.yaml
    assert run["timing"] == {} and run["manifest"] == {} and "timing.json unreadable" in caplog.text


def test_paths_are_cut_to_their_last_component():
    assert safe({"a": ["/home/ana/data/x.csv", "C:\\Users\\ana\\y.npz", "rel/z.csv", 3]}) == \
        {"a": ["x.csv", "y.npz", "rel/z.csv", 3]}
    assert scrub("cannot read /home/ana/runs/a/scores.npy (see ./rel/x.csv)") == "cannot read scores.npy (see ./rel/x.csv)"


def test_a_figure_is_a_png_inside_the_run_directory(tmp_path):
    write_png(tmp_path / "figures" / "roc.png")
    (tmp_path / "figures" / "fake.png").write_text("<svg/>")
    write_png(tmp_path / "outside.png")
    got = figure(tmp_path, "figures/roc.png")
    assert got["path"] == "figures/roc.png" and got["data"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert got["caption"].startswith("ROC of every attack")
    for refused in ("figures/fake.png", "figures/missing.png", "figures/../outside.png", str(tmp_path / "outside.png"),
                    "figures/roc.svg"):
        assert figure(tmp_path, refused) is None, refused


def test_sweep_variants_in_the_sweeps_order_else_its_directories_sorted(tmp_path):
    assert sweep_variants(tmp_path) == []
    for name in ("b", "a"):
        (tmp_path / "variants" / name).mkdir(parents=True)
    assert sweep_variants(tmp_path) == ["a", "b"]
    (tmp_path / "sweep.resolved.yaml").write_text(yaml.safe_dump({"variants": [{"name": "b"}, {"name": "c"}, "x"]}))
    assert sweep_variants(tmp_path) == ["b", "c"]


def test_rebuild_path_is_what_the_user_types(tmp_path, monkeypatch):
    assert rebuild_path(Path("runs/default")) == "runs/default"
    assert rebuild_path(Path("my runs/x")) == "'my runs/x'"
    monkeypatch.chdir(tmp_path)
    assert rebuild_path(tmp_path / "runs" / "default") == "runs/default"
    assert rebuild_path(Path("/srv/audits/a")) == "a"  # never an absolute path of the machine
