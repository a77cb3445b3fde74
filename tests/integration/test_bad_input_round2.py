"""Bad input, second round (issue 15): nothing of the user's is ever lost or run.

Same rules as ``test_bad_input.py``: exit code 2, exactly one stderr line ``miaudit: error: ...``,
no traceback, nothing pre-existing changed. Cases that touch a folder the user owns (--force,
report, export-signals, plugins named by a run directory) list the folder's files with their
content hashes before and after each command. One finished tiny run (module fixture) is copied
into each case that needs a run directory, so the cases never train more than once each.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from miaudit.cli import main
from miaudit.failpoints import ENV as FAILPOINT
from test_bad_input import NO_DATA, SIGNALS, SRC, check_error, in_process, in_subprocess, sets, signals_with

#: a tiny run: 4 models, 2 epochs, 200 audit records (seconds on 2 cores)
RUN_SETS = NO_DATA + [
    "data.name=synthetic-purchase", "data.params.n_records=400", "data.params.n_features=20",
    "data.params.n_classes=4", "data.params.n_parents=2", "data.splits.audit=200", "data.splits.population=100",
    "data.splits.validation=20", "data.splits.test=50", "train.epochs=2", "analysis.vulnerability=false",
    "audit.bootstrap=0", "audit.attacks=[loss,rmia-offline]",
]


def run_argv(out: Path, *extra: str) -> list[str]:
    return ["run", *sets(RUN_SETS + list(extra)), "--out", str(out), "-q"]


def hashes(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with the sha256 of its content (the lock file aside: it holds a pid)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("round2") / "run"
    assert main(run_argv(run)) == 0
    return run


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest)
    return dest


USER_FILES = {
    "models/resnet_final.pt": b"my weights",
    "figures/fig1.pdf": b"%PDF my figure",
    "analysis/notebook.ipynb": b'{"cells": []}',
    "thesis.tex": b"\\documentclass{article}",
    ".notes.tmp": b"my notes, in a file whose name looks temporary",
}


def add_user_files(folder: Path) -> dict[str, str]:
    for rel, data in USER_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in USER_FILES.items()}


# --------------------------------------------------------------------------------------------
# 1. --force deletes only what miaudit wrote
# --------------------------------------------------------------------------------------------


def test_force_on_a_folder_miaudit_did_not_make(tmp_path, capsys):
    """run.json (any JSON) and results.json beside user files: refused with and without --force."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "run.json").write_text('{"pool_fingerprint": "not this one"}')
    (d / "results.json").write_text("{}")
    add_user_files(d)
    before = hashes(d)
    in_process(capsys, run_argv(d), str(d), "different", "--force", "no record of the files miaudit wrote")
    assert hashes(d) == before
    in_process(capsys, [*run_argv(d), "--force"], "--force", "nothing is deleted")
    assert hashes(d) == before
    in_process(capsys, ["audit", "--signals", str(_write_signals(tmp_path)), "--out", str(d), "--force", "-q"],
               "nothing is deleted")
    assert hashes(d) == before


def test_force_keeps_user_files_in_a_run(run_copy, capsys):
    """A real run with the user's files inside: the refusal says what --force removes; --force removes only that."""
    user = add_user_files(run_copy)
    before = hashes(run_copy)
    line = in_process(capsys, run_argv(run_copy, "train.epochs=1"), "--force to delete the", "miaudit wrote there",
                      "models/", "anything else is kept")
    assert "thesis.tex" not in line
    assert hashes(run_copy) == before
    capsys.readouterr()
    assert main([*run_argv(run_copy, "train.epochs=1"), "--force"]) == 0
    after = hashes(run_copy)
    assert {rel: after.get(rel) for rel in user} == user  # every user file kept, byte for byte
    assert json.loads((run_copy / "results.json").read_text())["config"]["train"]["epochs"] == 1


def test_lock_cleanup_keeps_a_users_tmp_file(run_copy, capsys):
    """A resumed run removes the temporaries a killed run left (``.<name>.<8 random>.tmp``), not a user's ``.x.tmp``."""
    add_user_files(run_copy)
    (run_copy / "signals" / ".audit_logits.npy.ab12cd34.tmp").write_bytes(b"left by a killed run")
    capsys.readouterr()
    assert main(run_argv(run_copy)) == 0
    assert (run_copy / ".notes.tmp").read_bytes() == USER_FILES[".notes.tmp"]
    assert not (run_copy / "signals" / ".audit_logits.npy.ab12cd34.tmp").exists()


# --------------------------------------------------------------------------------------------
# 2. report never overwrites a user's report.html / report.md
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["report.html", "report.md"])
def test_report_keeps_a_users_report(name, tiny_run, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(tiny_run / "results.json", d / "results.json")
    (d / name).write_text("<html>my own report</html>")
    before = hashes(d)
    in_process(capsys, ["report", str(d)], str(d / name), "not written by miaudit")
    assert hashes(d) == before


def test_report_rewrites_its_own_report(run_copy, capsys):
    """Control: miaudit's own report (listed, or carrying its generator mark) is rebuilt."""
    (run_copy / ".miaudit-artefacts").unlink()  # a run from before the artefact list: recognised by its mark
    capsys.readouterr()
    assert main(["report", str(run_copy)]) == 0
    assert "report.html" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# 3. export-signals never replaces a device, FIFO, directory or someone else's file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink-to-fifo", "user-file"])
def test_export_signals_refuses_what_is_not_its_file(kind, tiny_run, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    target = scratch / "out.npz"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
        (target / "inside.txt").write_text("mine")
    elif kind == "symlink-to-fifo":
        os.mkfifo(scratch / "pipe")
        target.symlink_to(scratch / "pipe")
    else:
        target.write_text("my thesis, not a signals file")
    before_scratch, before_run = hashes(scratch), hashes(tiny_run)
    kinds = [p.lstat().st_mode for p in sorted(scratch.rglob("*"))]
    in_process(capsys, ["export-signals", str(tiny_run), str(target)], str(target))
    assert hashes(scratch) == before_scratch and hashes(tiny_run) == before_run
    assert [p.lstat().st_mode for p in sorted(scratch.rglob("*"))] == kinds
    assert not list(scratch.rglob(".*.tmp"))


def test_export_signals_replaces_its_own_file(tiny_run, tmp_path, capsys):
    target = tmp_path / "s.npz"
    capsys.readouterr()
    assert main(["export-signals", str(tiny_run), str(target)]) == 0
    assert main(["export-signals", str(tiny_run), str(target)]) == 0  # a signals file may be refreshed


def test_export_signals_to_a_device_file(tiny_run, tmp_path, capsys):
    """The /dev/full case, on a private device node (never the system's own: an old miaudit would replace it)."""
    dev = tmp_path / "full"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # the device numbers of /dev/full
    except (PermissionError, OSError):
        pytest.skip("cannot create a device node here (needs root)")
    before = os.stat(dev)
    in_process(capsys, ["export-signals", str(tiny_run), str(dev)], str(dev), "not a regular file")
    after = os.stat(dev)
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev, before.st_ino)


# --------------------------------------------------------------------------------------------
# 4. plugins named by a run directory are not imported unless asked
# --------------------------------------------------------------------------------------------


def _plant_plugin(run: Path, tmp_path: Path, body: str = "") -> tuple[Path, Path]:
    marker = tmp_path / "plugin-ran"
    plugin = tmp_path / "evil.py"
    plugin.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n{body}")
    cfg = run / "config.resolved.yaml"
    cfg.write_text(cfg.read_text().replace("plugins: []", f"plugins:\n- {plugin}"))
    assert str(plugin) in cfg.read_text()
    return plugin, marker


def test_analyze_does_not_import_a_run_directorys_plugins(run_copy, tmp_path, capsys):
    plugin, marker = _plant_plugin(run_copy, tmp_path, "raise RuntimeError('the plugin ran')\n")
    before = hashes(run_copy)
    in_process(capsys, ["analyze", str(run_copy), "-q"], str(plugin), "--allow-plugins")
    assert not marker.exists()
    assert hashes(run_copy) == before
    # asked for: imported (this one then fails, in one line)
    in_process(capsys, ["analyze", str(run_copy), "-q", "--allow-plugins"], "plugins:", "the plugin ran")
    assert marker.exists()
    assert hashes(run_copy) == before


@pytest.mark.parametrize("command", ["report", "export-signals"])
def test_other_commands_never_import_a_run_directorys_plugins(command, run_copy, tmp_path, capsys):
    _, marker = _plant_plugin(run_copy, tmp_path)
    argv = ["report", str(run_copy)] if command == "report" else ["export-signals", str(run_copy), str(tmp_path / "s.npz")]
    capsys.readouterr()
    assert main(argv) == 0
    assert not marker.exists()


def test_plugin_calling_sys_exit(tmp_path, capsys):
    plugin = tmp_path / "quits.py"
    plugin.write_text("import sys\nsys.exit(0)\n")
    out = tmp_path / "out"
    in_process(capsys, run_argv(out, f"plugins=[{plugin}]"), "quits.py", "sys.exit(0)")
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# signals files: bounded work, edge cases, extreme values, encryption (items 5, 7, 8, 9)
# --------------------------------------------------------------------------------------------


def _write_signals(d: Path, **changes) -> Path:
    path = d / "signals.npz"
    signals_with(**changes)(path)
    return path


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _lying(path: Path, name: str, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """A signals file whose member ``name`` declares ``shape`` over 64 bytes of data (the others are sound)."""
    import io

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, arr in SIGNALS.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{key}.npy", buf.getvalue())
        if name not in SIGNALS:
            zf.writestr(f"{name}.npy", _npy_header(shape, dtype) + bytes(64))
    if name in SIGNALS:  # rewrite the archive with that member replaced
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        members[f"{name}.npy"] = _npy_header(shape, dtype) + bytes(64)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for n, data in members.items():
                zf.writestr(n, data)


def _encrypted(path: Path) -> None:
    """Set the 'encrypted' flag of every member (what a password-protected zip tool writes)."""
    signals_with()(path)
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        while i >= 0:
            flags = struct.unpack_from("<H", data, i + off)[0]
            struct.pack_into("<H", data, i + off, flags | 1)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


M, N, C = SIGNALS["logits"].shape
ROUND2_SIGNALS = {
    # 5: lying headers, checked before anything is allocated
    "logits-header-lies": (lambda p: _lying(p, "logits", (10**6, 10**6, 100)), ["logits", "declares shape", "damaged or forged"]),
    "labels-header-lies": (lambda p: _lying(p, "labels", (2**40,), "<i8"), ["labels", "declares shape (1099511627776,)"]),
    # 7: membership edge cases
    "mask-row-all-true": (lambda p: signals_with(in_mask=np.vstack([np.ones((1, N), bool), SIGNALS["in_mask"][1:]]))(p),
                          ["in_mask: row 0", "no non-members"]),
    "mask-row-all-false": (lambda p: signals_with(in_mask=np.vstack([SIGNALS["in_mask"][:3], np.zeros((1, N), bool)]))(p),
                           ["in_mask: row 3", "no members"]),
    "one-record": (lambda p: signals_with(logits=SIGNALS["logits"][:, :1], labels=SIGNALS["labels"][:1],
                                          in_mask=SIGNALS["in_mask"][:, :1])(p), ["in_mask: row 0", "N = 1"]),
    "no-records": (lambda p: signals_with(logits=SIGNALS["logits"][:, :0], labels=SIGNALS["labels"][:0],
                                         in_mask=SIGNALS["in_mask"][:, :0])(p), ["logits: has 0 records"]),
    "no-queries": (lambda p: signals_with(logits=np.zeros((M, 0, N, C), np.float32))(p), ["logits: has 0 queries"]),
    # 8: finite but extreme logits
    "logits-1e308": (lambda p: signals_with(logits=np.where(SIGNALS["logits"] > 0, 1e308, -1e308))(p),
                     ["logits: a logit of magnitude 1e+308"]),
    "logits-1e300": (lambda p: signals_with(logits=SIGNALS["logits"].astype(np.float64) * 1e300)(p),
                     ["logits: a logit of magnitude"]),
    # 9: an encrypted member
    "encrypted-member": (_encrypted, ["encrypted"]),
}


@pytest.mark.parametrize("case", list(ROUND2_SIGNALS))
def test_signals_file_round2(case, tmp_path, capsys):
    make, expected = ROUND2_SIGNALS[case]
    path = tmp_path / "signals.npz"
    make(path)
    out = tmp_path / "out"
    in_process(capsys, ["audit", "--signals", str(path), "--out", str(out), "-q"], *expected)
    assert not out.exists()


def test_signals_zip_bomb_over_the_memory_budget(tmp_path, capsys, monkeypatch):
    """A member that inflates past the budget is refused before it is read (here a 1 MB budget, 4.8 MB of zeros)."""
    import miaudit.signals.file as sf

    monkeypatch.setattr(sf, "memory_budget", lambda: 1 << 20)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, logits=np.zeros((4, 100_000, 3), np.float32), labels=np.zeros(100_000, np.int64),
                        in_mask=np.tile([True, False], (4, 50_000)))
    assert path.stat().st_size < 100_000
    in_process(capsys, ["audit", "--signals", str(path), "--out", str(tmp_path / "out"), "-q"],
               "logits", "GiB", "half its available memory")


def test_signals_unused_member_is_never_read(tmp_path):
    """A bomb or a lying header under a name miaudit does not use costs nothing: the file loads."""
    from miaudit.signals.file import load_signals_file

    path = tmp_path / "s.npz"
    _lying(path, "junk", (10**6, 10**6, 100))
    sig = load_signals_file(path)
    assert sig.logits.shape == (M, 1, N, C)


def test_signals_in_a_subprocess_no_warning_lines(tmp_path):
    """The unbalanced-membership warning is not printed before the one error line (item 19's class)."""
    mask = SIGNALS["in_mask"].copy()
    mask[0, :3] = True  # unbalanced: a warning would be logged first
    np.savez(tmp_path / "s.npz", logits=np.full((M, N, C), 1e300), labels=SIGNALS["labels"], in_mask=mask)
    in_subprocess(["audit", "--signals", str(tmp_path / "s.npz"), "--out", str(tmp_path / "out"), "-q"], "magnitude")


# --------------------------------------------------------------------------------------------
# config and data: unbounded counts, deep YAML, empty lists, duplicates, zero features (6, 11, 12, 18, 19, 21)
# --------------------------------------------------------------------------------------------

ROUND2_CONFIG = {
    "n-classes-1e9": (["data.params.n_classes=1000000000"], ["data.params.n_classes", "100000"]),
    "n-models-1e12": (["pool.n_models=1000000000000"], ["pool.n_models", "10000"]),
    "fprs-empty": (["audit.fprs=[]"], ["audit.fprs", "at least 1"]),
    "priors-empty": (["audit.priors=[]"], ["audit.priors", "at least 1"]),
    "targets-duplicate": (["audit.targets=[0,0,0]"], ["audit.targets", "model 0 is listed more than once"]),
    "synthetic-too-big": (["data.params.n_records=100000000", "data.params.n_features=1000"],
                          ["data.params", "8 GiB"]),
    "bootstrap-huge": (["audit.bootstrap=1000000000000"], ["audit.bootstrap"]),
    "set-nested-5000": (["analysis.x=" + "[" * 5_000 + "]" * 5_000], ["nested"]),
    "set-key-deep": ([".".join(["a"] * 100) + "=1"], ["nested"]),
}


@pytest.mark.parametrize("case", list(ROUND2_CONFIG))
def test_config_round2(case, tmp_path, capsys):
    overrides, expected = ROUND2_CONFIG[case]
    out = tmp_path / "out"
    in_process(capsys, run_argv(out, *overrides), *expected)
    assert not out.exists()


ROUND2_CONFIG_FILES = {
    "nested-50000": ("data: " + "[" * 50_000 + "]" * 50_000 + "\n", ["nested"]),
    "nested-maps-50000": ("data: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n", ["nested"]),
    "unhashable-key": ("? [a, b]\n: 1\n", ["a key must be a name", "line 1"]),
}


@pytest.mark.parametrize("case", list(ROUND2_CONFIG_FILES))
def test_config_file_round2(case, tmp_path, capsys):
    text, expected = ROUND2_CONFIG_FILES[case]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    in_process(capsys, ["run", str(path), "--out", str(tmp_path / "out"), "-q"], *expected)
    assert not (tmp_path / "out").exists()


SMALL = ["data.splits.audit=20", "data.splits.population=10", "data.splits.validation=5", "data.splits.test=5"]
X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
Y = np.arange(50) % 3

ROUND2_DATA = {
    "csv-label-1e9": (lambda d: (d / "d.csv").write_text("label,a\n1000000000,1\n0,2\n1,3\n"), "csv",
                      ["d.csv", "label 1000000000 is too large", "100,000 classes"]),
    "npz-label-1e18": (lambda d: np.savez(d / "d.npz", x=X, y=np.where(Y == 2, 10**18, Y)), "npz",
                       ["d.npz", "is too large"]),
    "npz-zero-features": (lambda d: np.savez(d / "d.npz", x=X[:, :0], y=Y), "npz", ["no features"]),
    "csv-value-1e300": (lambda d: (d / "d.csv").write_text("label,a\n1,1e300\n0,2\n1,3\n"), "csv",
                        ["d.csv", "line 2, column 'a' is 1e+300", "float32"]),
}


@pytest.mark.parametrize("case", list(ROUND2_DATA))
def test_data_round2(case, tmp_path, capsys):
    make, kind, expected = ROUND2_DATA[case]
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    out = tmp_path / "out"
    in_process(capsys, ["run", *sets(NO_DATA + SMALL + [f"data.name={kind}", f"data.params.path=d.{kind}",
                                                         f"data.data_dir={data}"]), "--out", str(out), "-q"], *expected)
    assert not out.exists()


def test_data_warning_not_printed_before_the_error(tmp_path):
    """CSV values near 1e300 (float32 overflow): one line in a real process, no RuntimeWarning lines."""
    (tmp_path / "d.csv").write_text("label,a\n1,1e300\n0,2\n1,3\n")
    in_subprocess(["run", *sets(NO_DATA + SMALL + ["data.name=csv", f"data.params.path={tmp_path / 'd.csv'}"]),
                   "--out", str(tmp_path / "out"), "-q"], "1e+300")
    assert not (tmp_path / "out").exists()


NOISY = """
import logging, sys, warnings
import miaudit.config
import miaudit.pipeline.configure
from miaudit.cli import main

def noisy(*a, **k):
    logging.getLogger("miaudit.x").warning("a warning on the way")
    warnings.warn("a RuntimeWarning on the way", RuntimeWarning, stacklevel=1)
    if sys.argv[1] == "fail":
        raise miaudit.config.ConfigError("the real problem")
    raise SystemExit(0)

miaudit.pipeline.configure.load_config = noisy
sys.exit(main(["run", "--out", sys.argv[2], "-q"]))
"""


def test_warnings_on_the_way_to_an_error_are_dropped(tmp_path):
    """Warnings logged or raised before a user error are not printed: the error is the one line (item 19's class)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run([sys.executable, "-c", NOISY, "fail", str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=300)
    check_error(proc.returncode, proc.stderr, "the real problem")
    # control: the same warnings after a success are shown
    proc = subprocess.run([sys.executable, "-c", NOISY, "ok", str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and "a warning on the way" in proc.stderr and "RuntimeWarning" in proc.stderr, proc.stderr


def test_out_name_too_long(tmp_path, capsys):
    out = tmp_path / ("x" * 300)
    in_process(capsys, run_argv(out), "File name too long")


# --------------------------------------------------------------------------------------------
# run directories: JSON of the wrong type, damaged caches, --compare with an audit folder (10, 15, 16)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [(b"[1, 2]", "expected a JSON object, found list"),
                                               (b'"text"', "found str"), (b"\xff\xfe{}", "not a UTF-8")])
def test_run_json_wrong_type(content, expected, run_copy, capsys):
    (run_copy / "run.json").write_bytes(content)
    before = hashes(run_copy)
    in_process(capsys, run_argv(run_copy), "run.json", expected)
    assert hashes(run_copy) == before


@pytest.mark.parametrize("command", ["report", "analyze"])
@pytest.mark.parametrize("content, expected", [(b"[]", "expected a JSON object"), (b"\xff\xfe\x00", "not a UTF-8")])
def test_results_json_wrong_type(command, content, expected, run_copy, capsys):
    (run_copy / "results.json").write_bytes(content)
    before = hashes(run_copy)
    in_process(capsys, [command, str(run_copy)] + (["-q"] if command == "analyze" else []), "results.json", expected)
    assert hashes(run_copy) == before


def test_damaged_cached_signals_are_recomputed(run_copy, capsys):
    logits = run_copy / "signals" / "audit_logits.npy"
    good = np.load(logits)
    logits.write_bytes(logits.read_bytes()[:200])  # truncated
    before = hashes(run_copy)
    # export-signals reads the cache as it is: refused in one line, nothing changed
    in_process(capsys, ["export-signals", str(run_copy), str(run_copy.parent / "s.npz")], "audit_logits.npy", "damaged")
    assert hashes(run_copy) == before
    capsys.readouterr()
    assert main(run_argv(run_copy)) == 0  # the same command repairs it from the members' parts
    np.testing.assert_array_equal(np.load(logits), good)


def test_damaged_splits_file(run_copy, capsys):
    np.savez(run_copy / "splits.npz", audit=np.array([object()] * 3, dtype=object), population=np.arange(3),
             validation=np.arange(3), test=np.arange(3))
    before = hashes(run_copy)
    in_process(capsys, ["analyze", str(run_copy), "-q"], "splits.npz", "damaged")
    assert hashes(run_copy) == before


def test_damaged_member_weights_are_retrained(run_copy, capsys):
    weights = run_copy / "models" / "member_001.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    capsys.readouterr()
    assert main(run_argv(run_copy)) == 0
    assert weights.read_bytes() == good  # retrained: the same seed gives the same weights


def test_analyze_compare_with_an_audit_folder(tiny_run, tmp_path, capsys):
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    shutil.copy(tiny_run / "results.json", audit_dir / "results.json")  # what `miaudit audit` leaves: no signals/
    shutil.copytree(tiny_run / "scores", audit_dir / "scores")
    before = hashes(tiny_run)
    in_process(capsys, ["analyze", str(tiny_run), "--compare", str(audit_dir), "-q"], str(audit_dir),
               "not a `miaudit run` directory")
    assert hashes(tiny_run) == before


# --------------------------------------------------------------------------------------------
# training that diverges; Ctrl-C while workers start (13, 14)
# --------------------------------------------------------------------------------------------


def test_diverging_training(tmp_path, capsys):
    out = tmp_path / "out"
    line = in_process(capsys, run_argv(out, "train.lr=1e30", "runtime.batched=false"), "member 0 diverged at epoch",
                      "lower train.lr")
    assert "loss nan" in line or "loss inf" in line or "weights" in line
    assert not (out / "models" / "member_000.safetensors").exists()


def test_ctrl_c_while_workers_start(tmp_path):
    """SIGINT to the whole process group (a terminal's Ctrl-C) while two workers are starting: exit 130, one line."""
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT}
    env.update(PYTHONPATH=SRC, **{FAILPOINT: "worker-start=pause"})
    argv = run_argv(tmp_path / "out", "runtime.workers=2", "runtime.threads=2")
    proc = subprocess.Popen([sys.executable, "-m", "miaudit.cli", *argv], stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while sum("paused" in line for line in lines) < 2 and time.monotonic() < deadline:
            lines.append(proc.stderr.readline())
        assert sum("paused" in line for line in lines) == 2, lines
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = [line for line in (*lines, *rest.splitlines()) if line.strip() and "failpoint" not in line]
    assert code == 130, (code, lines, rest)
    assert len(err) == 1 and err[0].startswith("miaudit: interrupted"), (lines, rest)


# --------------------------------------------------------------------------------------------
# report.md escapes user strings (20)
# --------------------------------------------------------------------------------------------


def test_report_md_escapes_user_strings(run_copy, capsys):
    results = json.loads((run_copy / "results.json").read_text())
    results["data"]["name"] = "<script>alert(1)</script>"
    (run_copy / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    assert main(["report", str(run_copy)]) == 0
    md = (run_copy / "report.md").read_text()
    html = (run_copy / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script>alert" not in md and "<script>alert" not in html
