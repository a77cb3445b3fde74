"""The run directory: what it refuses to reuse, what --force deletes (only miaudit's files), its lock."""

from __future__ import annotations

import pytest

from miaudit.errors import RunDirError
from miaudit.io import write_json, write_text
from miaudit.rundir import RunDir, clear_run_dir, describe_removal, locked, prepare_run_dir, remove_stale_temporaries


def _finished(root, fingerprint="aaaa"):
    """A run directory as a run leaves it: a manifest, members below models/, all recorded."""
    rd = prepare_run_dir(root, fingerprint)
    write_json(rd.manifest, {"pool_fingerprint": fingerprint})
    write_text(rd.member_sidecar(0), "{}")
    write_text(rd.results, "{}")
    return rd


def test_artefact_paths_live_under_the_root(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.member_weights(7) == tmp_path / "models" / "member_007.safetensors"
    assert rd.member_signals(12) == tmp_path / "signals" / "parts" / "member_012.npz"
    assert rd.attack_scores("lira-online") == tmp_path / "scores" / "lira-online.npy"
    assert rd.roc_figure.parent == rd.figures and rd.manifest.name == "run.json"


def test_the_same_fingerprint_reopens_and_keeps_every_file(tmp_path):
    _finished(tmp_path / "run")
    rd = prepare_run_dir(tmp_path / "run", "aaaa")
    assert rd.member_sidecar(0).is_file() and rd.results.is_file()


def test_another_fingerprint_is_refused_and_nothing_is_touched(tmp_path):
    rd = _finished(tmp_path / "run")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "run").rglob("*"))
    with pytest.raises(RunDirError, match="holds a run with a different .*--force to delete the 3 file"):
        prepare_run_dir(tmp_path / "run", "bbbb")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "run").rglob("*")) == before
    assert rd.member_sidecar(0).is_file()


def test_force_deletes_only_the_listed_artefacts(tmp_path):
    rd = _finished(tmp_path / "run")
    (rd.models / "notes.txt").write_text("mine")  # a user's file beside miaudit's
    (tmp_path / "run" / "keep.md").write_text("mine too")
    assert "(models/, results.json, run.json; anything else is kept)" in describe_removal(rd.root)
    rd2 = prepare_run_dir(tmp_path / "run", "bbbb", force=True)
    assert not rd.member_sidecar(0).exists() and not rd.results.exists() and not rd.manifest.exists()
    assert (rd.models / "notes.txt").read_text() == "mine" and (rd2.root / "keep.md").read_text() == "mine too"
    assert (rd2.root / ".miaudit-artefacts").read_text() == ""  # the list starts again


def test_force_removes_directories_it_emptied(tmp_path):
    rd = _finished(tmp_path / "run")
    removed = clear_run_dir(rd.root)
    assert set(removed) == {rd.manifest.resolve(), rd.member_sidecar(0).resolve(), rd.results.resolve()}
    assert not rd.models.exists()


def test_without_an_artefact_list_force_deletes_nothing(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "run.json").write_text('{"pool_fingerprint": "aaaa"}')  # not written by miaudit: no list
    assert "refuses to delete anything" in describe_removal(root)
    with pytest.raises(RunDirError, match="no record of the files miaudit wrote"):
        prepare_run_dir(root, "bbbb", force=True)
    assert (root / "run.json").is_file()


def test_a_folder_of_foreign_files_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RunDirError, match="is not empty and is not a miaudit run"):
        prepare_run_dir(tmp_path / "photos", "aaaa")
    with pytest.raises(RunDirError, match="is not a miaudit sweep"):
        prepare_run_dir(tmp_path / "photos", None, kind="sweep", force=True)  # --force does not help
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"\xff\xd8"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        prepare_run_dir(tmp_path / "file", "aaaa")


def test_a_sweep_directory_accepts_its_own_files_and_no_others(tmp_path):
    root = tmp_path / "sweep"
    prepare_run_dir(root, None, kind="sweep", own_files=frozenset({"sweep.csv", "variants"}))
    (root / "variants").mkdir()
    (root / "sweep.csv").write_text("a\n")
    prepare_run_dir(root, None, kind="sweep", own_files=frozenset({"sweep.csv", "variants"}))  # reopened
    (root / "other.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a miaudit sweep"):
        prepare_run_dir(root, None, kind="sweep", own_files=frozenset({"sweep.csv", "variants"}))


def test_the_lock_is_exclusive_and_clears_stale_temporaries(tmp_path):
    rd = prepare_run_dir(tmp_path / "run", "aaaa")
    stale = rd.root / ".results.json.ab12cd34.tmp"  # what io.atomic_path leaves when killed
    stale.write_text("half")
    users = rd.root / ".notes.tmp"
    users.write_text("a user's file")
    with locked(rd):
        assert not stale.exists() and users.exists()
        assert rd.lock.read_text().strip().isdigit()
        with pytest.raises(RunDirError, match="in use by another miaudit process"):
            with locked(rd):
                pass
    with locked(rd):  # released when the block ends
        pass
    assert remove_stale_temporaries(rd.root) == 0
