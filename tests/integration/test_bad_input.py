"""Bad input: one line on stderr naming the key or file, exit code 2, no traceback, nothing lost.

The corpus covers each bullet of issue 8's "Bad input" section: config, data, signals files
for ``miaudit audit`` and run directories. Most cases run in this process through
``miaudit.cli.main`` (the console entry point: the same parsing, error handling and exit code,
without a subprocess's seconds of start-up); a few run as real subprocesses, where anything
else written to stderr (a log line, a warning) would also show. Cases that meet a finished run
check that none of its files changed, byte for byte.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import miaudit
from miaudit.cli import main
from miaudit.pipeline.configure import load_config
from miaudit.data import load_dataset
from miaudit.failpoints import ENV as FAILPOINT

from conftest import TINY

SRC = str(Path(miaudit.__file__).resolve().parents[1])  # the miaudit this test imported, for subprocesses
#: TINY without its dataset: the model, training and pool of the tiny run, splits for small files
NO_DATA = [t for t in TINY if not t.startswith("data.")]
SMALL_SPLITS = ["data.splits.audit=20", "data.splits.population=10", "data.splits.validation=5", "data.splits.test=5"]


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def check_error(code: int, err: str, *expected: str) -> str:
    """Exit code 2 and exactly one stderr line, ``miaudit: error: ...``, holding every ``expected``."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("miaudit: error: ") and lines[0].strip() != "miaudit: error:", err
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def in_process(capsys, argv: list[str], *expected: str) -> str:
    capsys.readouterr()
    code = main(argv)
    return check_error(code, capsys.readouterr().err, *expected)


def in_subprocess(argv: list[str], *expected: str, env: dict[str, str] | None = None, prefix: list[str] = ()) -> str:
    full_env = {k: v for k, v in os.environ.items() if k != FAILPOINT}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, full_env.get("PYTHONPATH")]))
    proc = subprocess.run([*prefix, sys.executable, "-m", "miaudit.cli", *argv], capture_output=True, text=True,
                          env={**full_env, **(env or {})}, timeout=300)
    return check_error(proc.returncode, proc.stderr, *expected)


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory (its lock file aside, which records the last pid)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------

CONFIG_CASES = {
    "unknown-key": (["train.epochz=3"], ["train.epochz: unknown key"]),
    "unknown-nested-key": (["data.params.n_record=10"], ["data.params.n_record: unknown key"]),
    "wrong-type": (["train.epochs=abc"], ["train.epochs", "valid integer", "abc"]),
    "wrong-type-section": (["train=3"], ["train:", "dictionary"]),
    "wrong-type-list": (["audit.fprs=abc"], ["audit.fprs", "tuple"]),
    "negative-size": (["data.splits.test=-5"], ["data.splits.test", "-5"]),
    "negative-records": (["data.params.n_records=-1"], ["data.params.n_records"]),
    "zero-batch": (["train.batch_size=0"], ["train.batch_size", "greater than or equal to 1"]),
    "zero-epochs": (["train.epochs=0"], ["train.epochs"]),
    "zero-models": (["pool.n_models=0"], ["pool.n_models"]),
    "odd-pool": (["pool.n_models=5"], ["pool.n_models", "must be even"]),
    "fpr-above-one": (["audit.fprs=[0.01,1.5]"], ["audit.fprs", "1.5"]),
    "fpr-one": (["audit.fprs=[1]"], ["audit.fprs", "[0, 1)"]),
    "fpr-negative": (["audit.fprs=[-0.1]"], ["audit.fprs", "-0.1"]),
    "alpha-zero": (["analysis.alpha=0"], ["analysis.alpha"]),
    "alpha-one": (["analysis.extra_alphas=[1.0]"], ["analysis.extra_alphas", "(0, 1)"]),
    "splits-larger-than-dataset": (["data.splits.audit=2000"], ["data.splits", "2700", "only 1400 records"]),
    "unknown-dataset": (["data.name=purchase1000"], ["data.name", "unknown dataset 'purchase1000'", "purchase100"]),
    "unknown-model": (["model.name=resnet19"], ["model.name", "unknown model 'resnet19'", "resnet18"]),
    "unknown-attack": (["audit.attacks=[loss,lira]"], ["audit.attacks[1]", "unknown attack 'lira'"]),
    "unknown-attack-params": (["audit.attack_params={nope: {}}"], ["attack_params", "unknown attack 'nope'"]),
    "unknown-defence": (["defences=[dropout]"], ["defences", "unknown defence 'dropout'"]),
    "unknown-recipe": (["train.recipes=[l3]"], ["train.recipes", "unknown recipe 'l3'"]),
    "set-without-value": (["train.epochs"], ["--set 'train.epochs'", "KEY=VALUE"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config(case, tmp_path, capsys):
    overrides, expected = CONFIG_CASES[case]
    out = tmp_path / "out"
    in_process(capsys, ["run", *sets(TINY + overrides), "--out", str(out), "-q"], *expected)
    assert not out.exists()  # refused before the run directory was touched


CONFIG_FILES: dict[str, tuple[bytes | None, list[str]]] = {
    "missing": (None, ["config file", "not found"]),
    "not-yaml": (b"train: [1, 2\n", ["not valid YAML at line 2"]),
    "not-a-mapping": (b"- train\n- pool\n", ["the top level must be a mapping"]),
    "not-text": (b"\xff\xfe\x00\x01", ["not a text file"]),
    "unknown-section": (b"trian:\n  epochs: 3\n", ["trian: unknown key"]),
    "duplicate-key": (b"train:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n", ["'epochs' appears twice", "line 4"]),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_config_file(case, tmp_path, capsys):
    content, expected = CONFIG_FILES[case]
    path = tmp_path / "audit.yaml"
    if content is not None:
        path.write_bytes(content)
    in_process(capsys, ["run", str(path), "--out", str(tmp_path / "out"), "-q"], *expected)
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    capsys.readouterr()
    assert main(["--debug", "run", "--set", "pool.n_models=5", "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("miaudit: error: config: pool.n_models")


USAGE_CASES = {
    "unknown-command": (["nosuch"], ["No such command", "miaudit --help"]),
    "unknown-option": (["run", "--bogus"], ["No such option: --bogus", "miaudit run --help"]),
    "missing-option": (["audit", "--out", "x"], ["--signals", "miaudit audit --help"]),
    "missing-argument": (["report"], ["Missing argument", "miaudit report --help"]),
}


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_command_line_usage(case, capsys):
    """Mistakes in the command line itself: one line too, pointing at the right --help."""
    argv, expected = USAGE_CASES[case]
    in_process(capsys, argv, *expected)


def test_usage_error_in_a_subprocess():
    in_subprocess(["run", "--bogus"], "No such option")


def test_config_error_in_a_subprocess(tmp_path):
    in_subprocess(["run", *sets(TINY + ["pool.n_models=3"]), "--out", str(tmp_path / "out")], "pool.n_models")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# data: files fabricated in the formats of the npz, csv, purchase100, cifar10 and fashion-mnist loaders
# --------------------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
X = RNG.normal(size=(50, 6)).astype(np.float32)
Y = np.arange(50) % 3


def _npz(d: Path, **arrays) -> list[str]:
    np.savez(d / "d.npz", **{"x": X, "y": Y, **arrays})
    return ["data.name=npz", "data.params.path=d.npz"]


def _truncated(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def npz_truncated(d: Path) -> list[str]:
    cfg = _npz(d)
    _truncated(d / "d.npz")
    return cfg


def npz_garbage(d: Path) -> list[str]:
    (d / "d.npz").write_bytes(b"these bytes are not an archive")
    return ["data.name=npz", "data.params.path=d.npz"]


def npz_empty(d: Path) -> list[str]:
    (d / "d.npz").write_bytes(b"")
    return ["data.name=npz", "data.params.path=d.npz"]


def npz_with(**arrays) -> Callable[[Path], list[str]]:
    return lambda d: _npz(d, **arrays)


def _with(a: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    a = a.copy()
    a[row, col] = value
    return a


def csv_file(text: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / "d.csv").write_text(text)
        return ["data.name=csv", "data.params.path=d.csv"]

    return make


def purchase_text(text: bytes, n_features: int = 4) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / "dataset_purchase").write_bytes(text)
        return ["data.name=purchase100", f"data.params.n_features={n_features}"]

    return make


def purchase_truncated_tgz(d: Path) -> list[str]:
    data = b"1,0,1,1,0\n" * 5000
    with tarfile.open(d / "dataset_purchase.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("./dataset_purchase")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _truncated(d / "dataset_purchase.tgz")
    return ["data.name=purchase100", "data.params.n_features=4"]


CIFAR_BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def cifar_archive(record_bytes: int = 3073, *, label: int = 3, truncate: bool = False, garbage: bool = False
                  ) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        path = d / "cifar-10-binary.tar.gz"
        if garbage:
            path.write_bytes(b"not a tar.gz at all")
            return ["data.name=cifar10"]
        with tarfile.open(path, "w:gz") as tar:
            for name in CIFAR_BATCHES:
                records = np.full((2, record_bytes), 128, dtype=np.uint8)
                records[:, 0] = label  # the label byte, then 3072 pixel bytes
                data = records.tobytes()
                info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if truncate:
            _truncated(path)
        return ["data.name=cifar10"]

    return make


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def fashion(*, images: tuple[int, ...] = (28, 28), labels: np.ndarray | None = None, drop: str | None = None,
            truncate: str | None = None, empty: str | None = None) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        arrays = [np.zeros((3, *images)), np.zeros(3) if labels is None else labels, np.zeros((2, 28, 28)), np.zeros(2)]
        for name, a in zip(IDX_NAMES, arrays):
            raw = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()
            (d / f"{name}.gz").write_bytes(gzip.compress(raw))
        if drop:
            (d / f"{drop}.gz").unlink()
        if truncate:
            _truncated(d / f"{truncate}.gz")
        if empty:
            (d / empty).write_bytes(b"")
        return ["data.name=fashion-mnist"]

    return make


#: case -> (make the files in a directory and return the config overrides, what the line must say)
DATA_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    # npz: missing, damaged, wrong shape, non-finite features, bad labels, empty, pickled
    "npz-missing-file": (lambda d: ["data.name=npz", "data.params.path=d.npz"], ["d.npz not found"]),
    "npz-truncated": (npz_truncated, ["d.npz is not a readable .npz file"]),
    "npz-not-an-archive": (npz_garbage, ["d.npz is not a readable .npz file", "neither a zip archive nor an .npy"]),
    "npz-empty-file": (npz_empty, ["d.npz is not a readable .npz file"]),
    "npz-shape-mismatch": (npz_with(y=Y[:40]), ["d.npz", "x has shape (50, 6) but y has 40 labels"]),
    "npz-features-not-a-matrix": (npz_with(x=X[:, 0]), ["d.npz", "x has shape (50,)"]),
    "npz-nan-feature": (npz_with(x=_with(X, 3, 2, np.nan)), ["d.npz", "row 3 has NaN or infinite"]),
    "npz-inf-feature": (npz_with(x=_with(X, 7, 1, np.inf)), ["d.npz", "row 7 has NaN or infinite"]),
    "npz-label-out-of-range": (lambda d: [*_npz(d), "data.params.n_classes=2"], ["d.npz", "label 2 is outside 0..1"]),
    "npz-label-negative": (npz_with(y=Y - 1), ["d.npz", "label -1 is negative"]),
    "npz-label-not-integer": (npz_with(y=Y + 0.5), ["d.npz", "0.5 is not an integer"]),
    "npz-label-text": (npz_with(y=np.array(["cat"] * 50)), ["d.npz", "'y' has dtype <U3"]),
    "npz-no-records": (npz_with(x=X[:0], y=Y[:0]), ["d.npz", "N > 0"]),
    "npz-pickled-array": (npz_with(x=X.astype(object)), ["d.npz", "object array", "refuses"]),
    "npz-splits-larger-than-dataset": (lambda d: [*_npz(d), "data.splits.audit=100"], ["data.splits", "only 50 records"]),
    # csv
    "csv-missing-label-column": (csv_file("a,b\n1,2\n3,4\n"), ["d.csv", "no column 'label'", "set label_column"]),
    "csv-empty-file": (csv_file(""), ["d.csv is empty"]),
    "csv-header-only": (csv_file("label,a\n"), ["d.csv has a header but no data rows"]),
    "csv-nan-feature": (csv_file("label,a\n1,nan\n0,2\n"), ["d.csv", "line 2, column 'a' is nan"]),
    "csv-wrong-field-count": (csv_file("label,a,b\n1,2,3\n0,1\n"), ["d.csv", "line 3 has 2 fields but the header has 3"]),
    "csv-negative-label": (csv_file("label,a\n-1,2\n1,2\n"), ["d.csv", "label -1 is negative"]),
    # purchase100 (text, archive)
    "purchase-wrong-feature-count": (purchase_text(b"1,0,1,1,0\n2,0,1,1,0\n", 600), ["dataset_purchase", "expected 601"]),
    "purchase-empty-file": (purchase_text(b""), ["dataset_purchase is empty"]),
    "purchase-label-out-of-range": (purchase_text(b"1,0,1,1,0\n101,0,1,1,0\n"), ["dataset_purchase", "label 101"]),
    "purchase-label-not-integer": (purchase_text(b"1,0,1,1,0\n2.5,0,1,1,0\n"), ["dataset_purchase", "not an integer"]),
    "purchase-nan-feature": (purchase_text(b"1,0,1,1,0\n2,0,nan,1,0\n"), ["dataset_purchase", "line 2, field 3 is nan"]),
    "purchase-truncated-archive": (purchase_truncated_tgz, ["dataset_purchase.tgz is truncated or corrupt"]),
    # cifar10 (binary archive)
    "cifar-missing-files": (lambda d: ["data.name=cifar10"], ["cifar-10-binary.tar.gz", "found in"]),
    "cifar-truncated-archive": (cifar_archive(truncate=True), ["cifar-10-binary.tar.gz is truncated or corrupt"]),
    "cifar-not-an-archive": (cifar_archive(garbage=True), ["cifar-10-binary.tar.gz is truncated or corrupt"]),
    "cifar-wrong-record-size": (cifar_archive(3000), ["data_batch_1.bin has 6000 bytes", "3073-byte record"]),
    "cifar-label-out-of-range": (cifar_archive(label=12), ["data_batch_1.bin", "label 12, outside 0..9"]),
    # fashion-mnist (IDX)
    "fashion-missing-file": (fashion(drop="t10k-labels-idx1-ubyte"), ["t10k-labels-idx1-ubyte.gz", "not found"]),
    "fashion-truncated-archive": (fashion(truncate="train-images-idx3-ubyte"), ["train-images-idx3-ubyte.gz is truncated"]),
    "fashion-wrong-image-shape": (fashion(images=(20, 20)), ["holds (20, 20) images", "(28, 28)"]),
    "fashion-label-out-of-range": (fashion(labels=np.array([0, 1, 12])), ["train-labels-idx1-ubyte.gz", "label 12"]),
    "fashion-count-mismatch": (fashion(labels=np.zeros(4)), ["has 3 images but", "has 4 labels"]),
    "fashion-empty-file": (fashion(empty="t10k-labels-idx1-ubyte.gz"), ["t10k-labels-idx1-ubyte.gz", "not an IDX"]),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_data(case, tmp_path, capsys):
    make, expected = DATA_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    overrides = make(data)
    out = tmp_path / "out"
    in_process(capsys, ["run", *sets(NO_DATA + SMALL_SPLITS + overrides + [f"data.data_dir={data}"]),
                        "--out", str(out), "-q"], *expected)
    assert not out.exists()  # nothing was written: data are checked before the run directory is made


def test_data_error_in_a_subprocess(tmp_path):
    _npz(tmp_path, x=_with(X, 0, 0, np.inf))
    argv = ["run", *sets(NO_DATA + SMALL_SPLITS + ["data.name=npz", f"data.params.path={tmp_path / 'd.npz'}"]),
            "--out", str(tmp_path / "out")]
    # with progress output (no -q): the stage names shown so far, then the one error line
    proc = subprocess.run([sys.executable, "-m", "miaudit.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("miaudit: error: ") and "row 0 has NaN" in lines[-1], proc.stderr
    assert sum("error" in line for line in lines) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# signals files for `miaudit audit`
# --------------------------------------------------------------------------------------------

M, N, C = 4, 20, 3
SIGNALS = {
    "logits": RNG.normal(size=(M, N, C)).astype(np.float32),
    "labels": np.arange(N) % C,
    "in_mask": np.array([[True, False] * (N // 2), [False, True] * (N // 2)] * 2),
}


def signals_with(**changes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        arrays = {k: v for k, v in {**SIGNALS, **changes}.items() if v is not None}
        np.savez(path, **arrays)

    return make


def _raw(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _signals_truncated(path: Path) -> None:
    signals_with()(path)
    _truncated(path)


SIGNALS_CASES: dict[str, tuple[Callable[[Path], None] | None, list[str]]] = {
    "missing-file": (None, ["--signals", "file not found"]),
    "missing-array": (signals_with(in_mask=None), ["in_mask: missing from the signals file"]),
    "missing-paired-array": (signals_with(population_logits=np.zeros((M, 5, C), np.float32)),
                             ["population_labels: missing"]),
    "mask-shape-mismatch": (signals_with(in_mask=np.ones((M, N - 1), bool)), ["in_mask: expected shape (4, 20)"]),
    "labels-shape-mismatch": (signals_with(labels=np.zeros(N + 1, int)), ["labels: expected shape (20,)"]),
    "population-classes-mismatch": (
        signals_with(population_logits=np.zeros((M, 5, C + 1), np.float32), population_labels=np.zeros(5, int)),
        ["population_logits: has 4 classes, logits has 3"],
    ),
    "mask-not-boolean": (signals_with(in_mask=np.full((M, N), 0.5)), ["in_mask: expected booleans", "float64"]),
    "mask-integers-not-0-1": (signals_with(in_mask=np.full((M, N), 2)), ["in_mask: expected booleans"]),
    "nan-logits": (signals_with(logits=_with(SIGNALS["logits"].reshape(M, -1), 1, 5, np.nan).reshape(M, N, C)),
                   ["logits: 1 NaN or infinite value(s)"]),
    "integer-logits": (signals_with(logits=np.zeros((M, N, C), int)), ["logits: expected a float array"]),
    "labels-out-of-range": (signals_with(labels=np.full(N, 7)), ["labels: labels must lie in 0..2"]),
    "pickled-array": (signals_with(labels=np.array([1, "a"] * (N // 2), dtype=object)), ["labels: holds Python objects"]),
    "not-an-archive": (_raw(b"definitely not numpy"), ["not a readable .npz file", "neither a zip archive"]),
    "truncated": (_signals_truncated, ["not a readable .npz file"]),
    "empty-file": (_raw(b""), ["not a readable .npz file"]),
}


@pytest.mark.parametrize("case", list(SIGNALS_CASES))
def test_signals_file(case, tmp_path, capsys):
    make, expected = SIGNALS_CASES[case]
    path = tmp_path / "signals.npz"
    if make is not None:
        make(path)
    out = tmp_path / "out"
    in_process(capsys, ["audit", "--signals", str(path), "--out", str(out), "-q"], *expected)
    assert not out.exists()


def test_signals_error_in_a_subprocess(tmp_path):
    signals_with(logits=np.full((M, N, C), np.nan, np.float32))(tmp_path / "s.npz")
    in_subprocess(["audit", "--signals", str(tmp_path / "s.npz"), "--out", str(tmp_path / "out")],
                  f"logits: {M * N * C} NaN or infinite")


# --------------------------------------------------------------------------------------------
# run directories: a finished run is never changed by a failed command
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[str], dict[str, bytes]]:
    """A finished tiny run on a user .npz (so its data file can go bad later): (dir, argv, files)."""
    root = tmp_path_factory.mktemp("finished")
    tiny = load_config(None, TINY).data
    ds = load_dataset(tiny.name, tiny.params, None, 0)
    np.savez(root / "data.npz", x=ds.x, y=ds.y)
    run = root / "run"
    argv = ["run", *sets(NO_DATA + [t for t in TINY if t.startswith("data.splits.")]
                         + ["data.name=npz", f"data.params.path={root / 'data.npz'}", "analysis.vulnerability=false"]),
            "--out", str(run), "-q"]
    assert main(argv) == 0
    return run, argv, snapshot(run)


def _run_dir_case(finished, capsys, argv: list[str], *expected: str) -> None:
    run, _, files = finished
    in_process(capsys, argv, *expected)
    assert snapshot(run) == files
    assert not list(run.rglob(".*.tmp"))


@pytest.mark.slow
def test_run_dir_other_config_refused(finished, capsys):
    run, argv, _ = finished
    _run_dir_case(finished, capsys, [*argv, "--set", "train.epochs=3"], str(run), "different", "--force")


@pytest.mark.slow
def test_run_dir_config_error(finished, capsys):
    _run_dir_case(finished, capsys, [*finished[1], "--set", "pool.n_models=3"], "pool.n_models")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "nan"])
def test_run_dir_data_file_gone_bad(damage, finished, capsys):
    """The same command after the data file was damaged: refused, the finished run intact."""
    run, argv, _ = finished
    data = run.parent / "data.npz"
    good = data.read_bytes()
    try:
        if damage == "truncated":
            _truncated(data)
        else:
            with np.load(io.BytesIO(good)) as z:
                np.savez(data, x=_with(z["x"], 5, 5, np.nan), y=z["y"])
        _run_dir_case(finished, capsys, argv, str(data))
    finally:
        data.write_bytes(good)


@pytest.mark.slow
@pytest.mark.parametrize(
    "failpoint, expected",
    [
        ("mid-write:results.json=enospc", ["disk full while writing", "results.json"]),
        ("mid-write:splits.npz=eacces", ["cannot write", "splits.npz", "permission denied"]),
    ],
)
def test_run_dir_disk_full_or_denied_while_writing(failpoint, expected, finished, capsys, monkeypatch):
    """The same command again, failing in the middle of a write: the old file stays, the temporary goes."""
    monkeypatch.setenv(FAILPOINT, failpoint)
    _run_dir_case(finished, capsys, finished[1], *expected)


@pytest.mark.slow
def test_run_dir_disk_full_in_a_subprocess(finished):
    run, argv, files = finished
    try:
        in_subprocess(argv, "disk full while writing", str(run / "results.json"),
                      env={FAILPOINT: "mid-write:results.json=enospc"})
        after = snapshot(run)
        # run.json records the command line, whose argv[0] differs between a subprocess and this process
        manifests = [json.loads(m) for m in (after.pop("run.json"), files["run.json"])]
        for m in manifests:
            m["machine"].pop("argv")
        assert manifests[0] == manifests[1]
        assert after == {k: v for k, v in files.items() if k != "run.json"}
        assert not list(run.rglob(".*.tmp"))
    finally:
        (run / "run.json").write_bytes(files["run.json"])


#: root ignores file permissions; without these capabilities it keeps them (in a subprocess)
NO_DAC_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.slow
def test_run_dir_not_writable(finished):
    run, argv, files = finished
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv") or subprocess.run([*NO_DAC_OVERRIDE, "true"]).returncode:
            pytest.skip("running as root, which ignores file permissions, and cannot drop CAP_DAC_OVERRIDE")
        prefix = NO_DAC_OVERRIDE
    modes = {p: p.stat().st_mode for p in [run, *run.rglob("*")] if p.is_dir()}
    try:
        for p in modes:
            p.chmod(0o555)
        in_subprocess([*argv], str(run), "not writable", prefix=prefix)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(run) == files


@pytest.mark.slow
def test_run_dir_in_use(finished, capsys):
    run, argv, _ = finished
    with open(run / ".lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        _run_dir_case(finished, capsys, argv, str(run), "in use by another miaudit process")


@pytest.mark.parametrize("kind", ["file", "foreign-directory"])
def test_out_not_a_run_directory(kind, tmp_path, capsys):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("mine")
        expected = "exists and is not a directory"
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("mine")
        expected = "not empty and is not a miaudit run"
    in_process(capsys, ["run", *sets(TINY), "--out", str(out), "-q"], str(out), expected)
    assert (out.read_text() if kind == "file" else (out / "thesis.tex").read_text()) == "mine"


def test_os_errors_the_user_fixes_are_one_line(tmp_path, capsys, monkeypatch):
    """ENOSPC/EACCES outside miaudit's writers (which name their file) still give one line, exit 2."""
    import miaudit.pipeline.configure

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x.yaml"))

    monkeypatch.setattr(miaudit.pipeline.configure, "load_config", denied)
    in_process(capsys, ["run", "--out", str(tmp_path / "out"), "-q"], "x.yaml: Permission denied")
