"""Crash safety: a run killed (SIGKILL) or interrupted (SIGINT) anywhere resumes to the same results.

Each case runs ``miaudit run`` in a subprocess that kills itself at a failpoint
(``miaudit.failpoints``: a stage boundary, the middle of a stage, or between writing a file's
temporary name and renaming it), then reruns the same command and compares ``results.json``
byte for byte with an uninterrupted run's. Members and signals parts finished before the kill
must be reused untouched (same inode and mtime: never rewritten).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import miaudit
from miaudit.cli import main

from conftest import TINY

pytestmark = pytest.mark.slow

#: the tiny run, one torch thread (byte-identical results need the same thread count), no
#: vulnerability analysis (seconds per run; its kill point has its own test below)
CONFIG = [*TINY, "analysis.vulnerability=false"]
ANALYSIS = [*TINY, "analysis.tsne=false"]  # with the analysis, less its slowest part (the t-SNE map)
SRC = str(Path(miaudit.__file__).resolve().parents[1])  # the miaudit this test imported, for subprocesses

#: failpoint -> what must be on disk when it fires (proof that the kill came where intended):
#: a boundary of each stage, the middle of training and of signals, and a file's temporary name
#: written but not yet renamed (``runner._run`` also has ``before-results``, a step before that;
#: Ctrl-C while a member's weights are renamed into place is the SIGINT test's)
KILL_POINTS = {
    "after-data": lambda d: (d / "splits.npz").is_file() and not (d / "models").exists(),
    "member-done": lambda d: _sidecars(d) == ["member_000.json"],
    "after-training": lambda d: len(_sidecars(d)) == 4 and not (d / "signals").exists(),
    "signals-part": lambda d: _names(d / "signals" / "parts") == ["member_000.npz"],
    "after-signals": lambda d: (d / "signals" / "manifest.json").is_file() and not (d / "scores").exists(),
    "after-attacks": lambda d: (d / "scores" / "loss.npy").is_file() and not (d / "summary.txt").exists(),
    "mid-write:results.json": lambda d: [p.name.split(".")[1] for p in _temps(d)] == ["results"],
}


def _names(directory: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in directory.glob(pattern)) if directory.is_dir() else []


def _sidecars(run: Path) -> list[str]:
    return _names(run / "models", "member_*.json")


def _temps(run: Path) -> list[Path]:
    """Temporary files of the atomic writer (``.<name>.<random>.tmp``) anywhere in the run."""
    return sorted(run.rglob(".*.tmp"))


def _finished(run: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every finished member, signals part and assembled signals array."""
    files = []
    for side in (run / "models").glob("member_*.json"):
        files += [side, side.with_suffix(".safetensors")]
    files += (run / "signals" / "parts").glob("member_*.npz")
    if (run / "signals" / "manifest.json").is_file():
        files += (run / "signals").glob("*.*")
    return {str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def argv(out: Path, config: list[str]) -> list[str]:
    return ["run", *(a for item in config for a in ("--set", item)), "--out", str(out), "-q"]


def cli_run(out: Path, failpoint: str | None = None, *, config: list[str] = CONFIG, popen: bool = False):
    """``python -m miaudit.cli run <config> --out out -q`` in a subprocess, failing at ``failpoint``."""
    env = {k: v for k, v in os.environ.items() if k != "MIAUDIT_FAILPOINT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    if failpoint:
        env["MIAUDIT_FAILPOINT"] = failpoint
    cmd = [sys.executable, "-m", "miaudit.cli", *argv(out, config)]
    if popen:  # Ctrl-C must reach it even if this process was started with SIGINT ignored (`cmd &`)
        return subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=300)


def resume(out: Path, capsys, config: list[str] = CONFIG) -> None:
    """Rerun the same command (in this process: the same code path, without the start-up cost)."""
    capsys.readouterr()
    assert main(argv(out, config)) == 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """An uninterrupted run ("reference") and one run killed at each failpoint, started together.

    They are independent; three at a time keep both cores busy through each one's start-up
    (importing torch), the larger part of its time.
    """
    root = tmp_path_factory.mktemp("crash")
    jobs = {"reference": (None, CONFIG), **{p: (p, CONFIG) for p in KILL_POINTS}, "after-analysis": ("after-analysis", ANALYSIS)}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(cli_run, root / name.replace(":", "-") / "run", point, config=config)
            for name, (point, config) in jobs.items()
        }
    return {name: (root / name.replace(":", "-") / "run", f.result()) for name, f in futures.items()}


@pytest.fixture(scope="module")
def reference(runs) -> Path:
    out, proc = runs["reference"]
    assert proc.returncode == 0, proc.stderr
    return out


def test_results_have_no_timing_and_fresh_runs_are_byte_identical(reference, tmp_path, capsys):
    text = (reference / "results.json").read_text()
    assert not {"total_s", "stages_s", "wall_s", "members_train_s"} & set(_keys(json.loads(text)))
    assert "total_s" in json.loads((reference / "timing.json").read_text())  # timing lives here
    resume(tmp_path / "again", capsys)  # a second fresh run, in another process than the reference
    assert (tmp_path / "again" / "results.json").read_text() == text
    assert (tmp_path / "again" / "splits.npz").read_bytes() == (reference / "splits.npz").read_bytes()
    for m in range(4):
        name = f"models/member_{m:03d}.safetensors"
        assert (tmp_path / "again" / name).read_bytes() == (reference / name).read_bytes(), name


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_rerun_reuses_finished_work_and_matches(point, runs, reference, capsys):
    out, proc = runs[point]
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert not (out / "results.json").exists()
    assert KILL_POINTS[point](out), sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    finished = _finished(out)

    resume(out, capsys)
    assert (out / "results.json").read_bytes() == (reference / "results.json").read_bytes()
    after = _finished(out)
    assert {k: after.get(k) for k in finished} == finished  # reused, never rewritten
    assert len(_sidecars(out)) == 4
    assert _temps(out) == []  # what the killed writer left behind is cleaned up


def test_sigkill_after_analysis_reuses_its_cache_and_matches(runs, tmp_path, capsys):
    out, proc = runs["after-analysis"]
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert not (out / "results.json").exists() and (out / "analysis" / "outliers.npz").is_file()
    finished = _finished(out)
    cache = (out / "analysis" / "outliers.npz").stat()

    resume(out, capsys, ANALYSIS)
    resume(tmp_path / "reference", capsys, ANALYSIS)  # uninterrupted
    assert (out / "results.json").read_bytes() == (tmp_path / "reference" / "results.json").read_bytes()
    assert {k: _finished(out).get(k) for k in finished} == finished
    assert (out / "analysis" / "outliers.npz").stat().st_ino == cache.st_ino  # the measures were reused


def test_sigint_stops_cleanly_says_how_to_resume_and_resumes(reference, tmp_path, capsys):
    """Ctrl-C while a member's weights are being written: the temporary file goes, the rerun finishes."""
    out = tmp_path / "run"
    proc = cli_run(out, failpoint="mid-write:member_001.safetensors=pause", popen=True)
    try:
        line = proc.stderr.readline()  # the failpoint says when it is paused
        assert "paused" in line, line + proc.stderr.read()
        assert len(_temps(out)) == 1  # member 1's complete weights under their temporary name
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "miaudit: interrupted; finished models and artefacts are kept — rerun the same command to resume"
    ]
    assert _temps(out) == [] and _sidecars(out) == ["member_000.json"]
    finished = _finished(out)

    resume(out, capsys)
    assert (out / "results.json").read_bytes() == (reference / "results.json").read_bytes()
    assert {k: _finished(out).get(k) for k in finished} == finished
