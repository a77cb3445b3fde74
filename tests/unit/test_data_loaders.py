"""Every real-data loader on small fabricated files of its real format, plus its error paths."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import DATASETS
from miaudit.data.cifar import CIFAR10_CLASSES, RestrictedUnpickler, restricted_loads
from miaudit.data.idx import FASHION_CLASSES, parse_idx
from miaudit.data.purchase import _parse_general, parse_numeric_text
from miaudit.errors import DataError


def load(name: str, data_dir: Path | None, **params):
    """Load a registered dataset the way the pipeline does: validated params, (params, dir, seed)."""
    spec = DATASETS.get(name)
    return spec.load(spec.params(**params), data_dir, 0)


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes pickles as Python 2's cPickle did for the CIFAR batches: protocol 2, str as BINSTRING."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj, *, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """A pickle like the real CIFAR python batches (Python 2, numpy 1.x module names)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", f"c{numpy_module}\n".encode())


# --------------------------------------------------------------------------------------------
# purchase100
# --------------------------------------------------------------------------------------------

PURCHASE_TEXT = b"1,0,1,1,0\n100,1,1,0,0\n50,0,0,0,1\n"
PURCHASE_X = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32)
PURCHASE_Y = np.array([0, 99, 49])


def test_purchase_text_known_answer(tmp_path):
    (tmp_path / "dataset_purchase").write_bytes(PURCHASE_TEXT)
    ds = load("purchase100", tmp_path, n_features=4)
    assert ds.x.dtype == np.float32 and ds.x.shape == (3, 4)
    np.testing.assert_array_equal(ds.x, PURCHASE_X)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, PURCHASE_Y)
    np.testing.assert_array_equal(ds.ids, [0, 1, 2])
    assert ds.kind == "tabular" and ds.n_classes == 100


def test_purchase_text_general_numbers_and_crlf(tmp_path):
    # not one-character features: the general parser, with CRLF line ends and no final newline
    (tmp_path / "dataset_purchase").write_bytes(b"3,0.5,-2,1e2\r\n1, 7 ,0,1\r\n")
    ds = load("purchase100", tmp_path, n_features=3)
    np.testing.assert_array_equal(ds.x, np.array([[0.5, -2, 100], [7, 0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(ds.y, [2, 0])


def test_purchase_fast_path_matches_general_parser(rng):
    labels = rng.integers(1, 101, size=300)
    feats = rng.integers(0, 2, size=(300, 20))
    text = "\n".join(f"{a}," + ",".join(map(str, r)) for a, r in zip(labels, feats)).encode() + b"\n"
    fast_labels, fast_x = parse_numeric_text(text, 21, "f", label_first=True)
    general = _parse_general(text, 21, "f")
    np.testing.assert_array_equal(fast_labels, general[:, 0])
    np.testing.assert_array_equal(fast_x, general[:, 1:])
    np.testing.assert_array_equal(fast_x, feats)


def test_purchase_npy_and_tgz(tmp_path):
    arr = np.column_stack([[1, 100, 50], PURCHASE_X]).astype(np.int64)
    npy_dir = tmp_path / "npy"
    npy_dir.mkdir()
    np.save(npy_dir / "purchase.npy", arr)
    ds = load("purchase100", npy_dir, n_features=4)
    np.testing.assert_array_equal(ds.x, PURCHASE_X)
    np.testing.assert_array_equal(ds.y, PURCHASE_Y)

    tgz_dir = tmp_path / "tgz"
    tgz_dir.mkdir()
    write_tar_gz(tgz_dir / "dataset_purchase.tgz", {"./dataset_purchase": PURCHASE_TEXT})
    ds = load("purchase100", tgz_dir, n_features=4)
    np.testing.assert_array_equal(ds.x, PURCHASE_X)
    np.testing.assert_array_equal(ds.y, PURCHASE_Y)


def test_purchase_label_base_zero(tmp_path):
    (tmp_path / "dataset_purchase").write_bytes(b"0,1,0\n99,0,1\n")
    ds = load("purchase100", tmp_path, n_features=2, label_base=0)
    np.testing.assert_array_equal(ds.y, [0, 99])


def test_purchase_missing_file_names_file_and_directory(tmp_path):
    with pytest.raises(DataError) as e:
        load("purchase100", tmp_path)
    msg = str(e.value)
    assert "dataset_purchase" in msg and "purchase.npy" in msg and str(tmp_path) in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "text, n_features, expected",
    [
        (b"1,0,1,1,0\n2,0,1,1\n", 4, ["line 2", "4 fields", "expected 5"]),  # wrong feature count
        (b"1,0,1,1,0\n2,0,nan,1,0\n", 4, ["line 2", "field 3", "NaN"]),  # NaN feature
        (b"1,0,1,1,0\n2,0,x,1,0\n", 4, ["line 2", "field 3", "'x'", "not a number"]),  # not a number
        (b"1,0,1,1,0\n101,0,1,1,0\n", 4, ["line 2", "label 101", "1..100"]),  # label out of range
        (b"0,0,1,1,0\n", 4, ["line 1", "label 0", "label_base: 0"]),  # 0-based file: says the fix
        (b"1,0,1,1,0\n2.5,0,1,1,0\n", 4, ["line 2", "2.5", "not an integer"]),  # non-integer label
        (b"", 4, ["empty"]),  # empty file
        (b"\n\n", 4, ["empty"]),  # blank file
    ],
)
def test_purchase_text_errors(tmp_path, text, n_features, expected):
    path = tmp_path / "dataset_purchase"
    path.write_bytes(text)
    with pytest.raises(DataError) as e:
        load("purchase100", tmp_path, n_features=n_features)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_purchase_npy_errors(tmp_path):
    np.save(tmp_path / "purchase.npy", np.array([[1, 0.0, np.nan]]))
    with pytest.raises(DataError, match="row 0 has NaN"):
        load("purchase100", tmp_path, n_features=2)
    np.save(tmp_path / "purchase.npy", np.array([[1, 0, 1]]))
    with pytest.raises(DataError, match="3 columns, expected 5"):
        load("purchase100", tmp_path, n_features=4)
    np.save(tmp_path / "purchase.npy", np.array([[1, 0], [2, 1]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="object"):
        load("purchase100", tmp_path, n_features=1)


# --------------------------------------------------------------------------------------------
# texas100
# --------------------------------------------------------------------------------------------


def test_texas_known_answer(tmp_path):
    (tmp_path / "feats").write_bytes(b"0,1,0\n1,1,1\n0,0,0\n1,0,0\n")
    (tmp_path / "labels").write_bytes(b"3\n1\n100\n42\n")
    ds = load("texas100", tmp_path, n_features=3)
    np.testing.assert_array_equal(ds.x, np.array([[0, 1, 0], [1, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    np.testing.assert_array_equal(ds.y, [2, 0, 99, 41])
    np.testing.assert_array_equal(ds.ids, np.arange(4))
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64


def test_texas_from_archive(tmp_path):
    write_tar_gz(
        tmp_path / "dataset_texas.tgz",
        {"texas/100/feats": b"0,1\n1,0\n", "texas/100/labels": b"2\n1\n"},
    )
    ds = load("texas100", tmp_path, n_features=2)
    np.testing.assert_array_equal(ds.x, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(ds.y, [1, 0])


@pytest.mark.parametrize(
    "feats, labels, expected",
    [
        (b"0,1,0\n1,1\n", b"1\n2\n", ["feats", "line 2", "2 fields", "expected 3"]),
        (b"0,1,0\n1,1,inf\n", b"1\n2\n", ["feats", "line 2", "inf"]),
        (b"0,1,0\n1,1,1\n", b"1\n", ["2 records but", "1 labels"]),
        (b"0,1,0\n1,1,1\n", b"1\n1.5\n", ["labels", "line 2", "not an integer"]),
        (b"0,1,0\n1,1,1\n", b"1\n0\n", ["labels", "line 2", "outside 1..100"]),
        (b"0,1,0\n1,1,1\n", b"1\nabc\n", ["labels", "line 2", "'abc'"]),
        (b"", b"1\n", ["feats", "empty"]),
    ],
)
def test_texas_errors(tmp_path, feats, labels, expected):
    (tmp_path / "feats").write_bytes(feats)
    (tmp_path / "labels").write_bytes(labels)
    with pytest.raises(DataError) as e:
        load("texas100", tmp_path, n_features=3)
    for part in expected:
        assert part in str(e.value), (part, str(e.value))


def test_texas_missing_labels_names_it(tmp_path):
    (tmp_path / "feats").write_bytes(b"0,1\n")
    with pytest.raises(DataError) as e:
        load("texas100", tmp_path, n_features=2)
    assert "'labels'" in str(e.value) and str(tmp_path) in str(e.value) and "'feats'" not in str(e.value)


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------

N_PER_BATCH = 2


def cifar10_batches(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, pixels (n, 3072) uint8) for data_batch_1..5 then test_batch."""
    return [
        (rng.integers(0, 10, N_PER_BATCH).astype(np.uint8), rng.integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8))
        for _ in range(6)
    ]


def binary_records(label_cols: list[np.ndarray], pixels: np.ndarray) -> bytes:
    return np.column_stack([*label_cols, pixels]).astype(np.uint8).tobytes()


def expected_x(pixels: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(pixels).reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)


CIFAR10_BIN_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
CIFAR10_PY_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_cifar10_binary(path: Path, batches, *, meta: bytes | None = None) -> Path:
    members = {f"cifar-10-batches-bin/{n}": binary_records([y], x) for n, (y, x) in zip(CIFAR10_BIN_NAMES, batches)}
    if meta is not None:
        members["cifar-10-batches-bin/batches.meta.txt"] = meta
    return write_tar_gz(path, members)


def cifar10_py_batch(y: np.ndarray, x: np.ndarray, i: int) -> bytes:
    return py2_pickle(
        {
            "batch_label": f"training batch {i} of 5",
            "labels": [int(v) for v in y],
            "data": x,
            "filenames": [f"img_{i}_{k}.png" for k in range(len(y))],
        }
    )


def test_cifar10_binary_archive_known_answer(tmp_path, rng):
    batches = cifar10_batches(rng)
    names = [f"name{k}" for k in range(10)]
    write_cifar10_binary(tmp_path / "cifar-10-binary.tar.gz", batches, meta=("\n".join(names) + "\n\n").encode())
    ds = load("cifar10", tmp_path)
    assert ds.x.shape == (12, 3, 32, 32) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x, expected_x([x for _, x in batches]))  # train 1..5 then test
    np.testing.assert_array_equal(ds.y, np.concatenate([y for y, _ in batches]))
    np.testing.assert_array_equal(ds.ids, np.arange(12))
    assert ds.class_names == tuple(names)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_cifar10_pixel_layout_is_rgb_planes(tmp_path):
    # one record whose red plane is 1, green 2, blue 3: x[0, c] must be (c + 1) / 255 everywhere
    pixels = np.repeat(np.array([1, 2, 3], dtype=np.uint8), 1024)[None]
    batches = [(np.array([k % 10], dtype=np.uint8), pixels) for k in range(6)]
    bin_dir = tmp_path / "cifar-10-batches-bin"
    bin_dir.mkdir()
    for n, (y, x) in zip(CIFAR10_BIN_NAMES, batches):
        (bin_dir / n).write_bytes(binary_records([y], x))
    ds = load("cifar10", tmp_path)  # the extracted folder, no meta file: the known names
    for c in range(3):
        assert np.all(ds.x[0, c] == np.float32(c + 1) / np.float32(255))
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 3, 4, 5])
    assert ds.class_names == CIFAR10_CLASSES


def test_cifar10_python_archive_known_answer(tmp_path, rng):
    batches = cifar10_batches(rng)
    members = {
        f"cifar-10-batches-py/{n}": cifar10_py_batch(y, x, i)
        for i, (n, (y, x)) in enumerate(zip(CIFAR10_PY_NAMES, batches))
    }
    members["cifar-10-batches-py/batches.meta"] = py2_pickle(
        {"num_cases_per_batch": 10000, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    )
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    ds = load("cifar10", tmp_path)
    np.testing.assert_array_equal(ds.x, expected_x([x for _, x in batches]))
    np.testing.assert_array_equal(ds.y, np.concatenate([y for y, _ in batches]))
    assert ds.class_names == CIFAR10_CLASSES


def test_cifar_auto_prefers_binary_and_format_selects(tmp_path, rng):
    bin_batches, py_batches = cifar10_batches(rng), cifar10_batches(rng)
    write_cifar10_binary(tmp_path / "cifar-10-binary.tar.gz", bin_batches)
    py_dir = tmp_path / "cifar-10-batches-py"
    py_dir.mkdir()
    for i, (n, (y, x)) in enumerate(zip(CIFAR10_PY_NAMES, py_batches)):
        (py_dir / n).write_bytes(cifar10_py_batch(y, x, i))
    np.testing.assert_array_equal(load("cifar10", tmp_path).y, np.concatenate([y for y, _ in bin_batches]))
    np.testing.assert_array_equal(
        load("cifar10", tmp_path, format="python").y, np.concatenate([y for y, _ in py_batches])
    )


def cifar100_data(rng, n: int):
    fine = rng.integers(0, 100, n).astype(np.uint8)
    coarse = (fine // 5).astype(np.uint8)
    return coarse, fine, rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def test_cifar100_binary_fine_and_coarse(tmp_path, rng):
    train, test = cifar100_data(rng, 3), cifar100_data(rng, 2)
    fine_names = [f"fine{k}" for k in range(100)]
    write_tar_gz(
        tmp_path / "cifar-100-binary.tar.gz",
        {
            "cifar-100-binary/train.bin": binary_records([train[0], train[1]], train[2]),
            "cifar-100-binary/test.bin": binary_records([test[0], test[1]], test[2]),
            "cifar-100-binary/fine_label_names.txt": "\n".join(fine_names).encode(),
        },
    )
    fine = load("cifar100", tmp_path)
    np.testing.assert_array_equal(fine.y, np.concatenate([train[1], test[1]]))
    np.testing.assert_array_equal(fine.x, expected_x([train[2], test[2]]))
    assert fine.class_names == tuple(fine_names)
    coarse = load("cifar100", tmp_path, labels="coarse")
    np.testing.assert_array_equal(coarse.y, np.concatenate([train[0], test[0]]))
    assert coarse.class_names == tuple(f"class_{k}" for k in range(20))  # no coarse_label_names.txt


def test_cifar100_python_fine_and_coarse(tmp_path, rng):
    parts = {"train": cifar100_data(rng, 3), "test": cifar100_data(rng, 2)}
    members = {
        f"cifar-100-python/{name}": py2_pickle(
            {
                "filenames": [f"{name}_{k}.png" for k in range(len(f))],
                "batch_label": f"{name} batch",
                "fine_labels": [int(v) for v in f],
                "coarse_labels": [int(v) for v in c],
                "data": x,
            },
            numpy_module="numpy._core.multiarray",  # as numpy >= 2 writes it
        )
        for name, (c, f, x) in parts.items()
    }
    members["cifar-100-python/meta"] = py2_pickle(
        {"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": [f"c{k}" for k in range(20)]}
    )
    write_tar_gz(tmp_path / "cifar-100-python.tar.gz", members)
    fine = load("cifar100", tmp_path)
    np.testing.assert_array_equal(fine.y, np.concatenate([parts["train"][1], parts["test"][1]]))
    np.testing.assert_array_equal(fine.x, expected_x([parts["train"][2], parts["test"][2]]))
    assert fine.class_names[:2] == ("f0", "f1") and fine.n_classes == 100
    coarse = load("cifar100", tmp_path, labels="coarse")
    np.testing.assert_array_equal(coarse.y, np.concatenate([parts["train"][0], parts["test"][0]]))
    assert coarse.class_names[-1] == "c19" and coarse.n_classes == 20


def test_cifar_missing_names_archives_and_directory(tmp_path):
    with pytest.raises(DataError) as e:
        load("cifar10", tmp_path)
    msg = str(e.value)
    assert "cifar-10-binary.tar.gz" in msg and "cifar-10-python.tar.gz" in msg and str(tmp_path) in msg
    assert "download: true" in msg


def test_cifar_truncated_archive(tmp_path, rng):
    path = write_cifar10_binary(tmp_path / "cifar-10-binary.tar.gz", cifar10_batches(rng))
    truncate(path)
    with pytest.raises(DataError, match="truncated or corrupt.*download it again"):
        load("cifar10", tmp_path)


def test_cifar_binary_batch_not_a_multiple_of_the_record(tmp_path, rng):
    batches = cifar10_batches(rng)
    members = {f"cifar-10-batches-bin/{n}": binary_records([y], x) for n, (y, x) in zip(CIFAR10_BIN_NAMES, batches)}
    members["cifar-10-batches-bin/data_batch_3.bin"] = members["cifar-10-batches-bin/data_batch_3.bin"][:-100]
    write_tar_gz(tmp_path / "cifar-10-binary.tar.gz", members)
    with pytest.raises(DataError, match=r"data_batch_3.bin has 6046 bytes, not a positive multiple of the 3073"):
        load("cifar10", tmp_path)


def test_cifar_missing_batch_and_bad_labels(tmp_path, rng):
    batches = cifar10_batches(rng)
    members = {f"cifar-10-batches-bin/{n}": binary_records([y], x) for n, (y, x) in zip(CIFAR10_BIN_NAMES, batches)}
    del members["cifar-10-batches-bin/data_batch_2.bin"]
    write_tar_gz(tmp_path / "cifar-10-binary.tar.gz", members)
    with pytest.raises(DataError, match="data_batch_2.bin is missing"):
        load("cifar10", tmp_path)
    batches[0] = (np.array([3, 12], dtype=np.uint8), batches[0][1])
    write_cifar10_binary(tmp_path / "cifar-10-binary.tar.gz", batches)
    with pytest.raises(DataError, match="record 1 has fine label 12, outside 0..9"):
        load("cifar10", tmp_path)


class _Payload:
    """Pickles to a call of ``fn(*args)``, the way a malicious file would."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize(
    "attack, refused",
    [("open", "io.open"), ("system", "posix.system"), ("eval", "__builtin__.eval"), ("exec", "__builtin__.exec")],
)
def test_cifar_malicious_pickle_is_refused_and_runs_nothing(tmp_path, rng, attack, refused):
    marker = tmp_path / "pwned"
    payload = {
        "open": _Payload(open, str(marker), "w"),
        "system": _Payload(os.system, f"touch {marker}"),
        "eval": _Payload(eval, f"open({str(marker)!r}, 'w')"),
        "exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    }[attack]
    batches = cifar10_batches(rng)
    py_dir = tmp_path / "cifar-10-batches-py"
    py_dir.mkdir()
    for i, (n, (y, x)) in enumerate(zip(CIFAR10_PY_NAMES, batches)):
        (py_dir / n).write_bytes(cifar10_py_batch(y, x, i))
    # shaped like a real batch (Python 2 strings), so the payload's global is the first one met
    (py_dir / "data_batch_1").write_bytes(py2_pickle({"data": payload, "labels": [0]}))
    with pytest.raises(DataError) as e:
        load("cifar10", tmp_path)
    assert f"refusing to unpickle {refused}" in str(e.value)  # refused for the payload, not something else
    assert "data_batch_1" in str(e.value)
    assert not marker.exists()


def test_restricted_unpickler_admits_only_numpy_array_globals():
    refused = [("builtins", "eval"), ("os", "system"), ("subprocess", "Popen"), ("numpy", "load"), ("io", "open")]
    for module, name in refused:
        with pytest.raises(DataError, match=f"refusing to unpickle {module}.{name}"):
            RestrictedUnpickler(io.BytesIO(b""), where="f").find_class(module, name)
    # the real format: a dict of bytes keys, lists and uint8 arrays (as numpy >= 2 pickles them, too)
    arr = np.arange(12, dtype=np.uint8).reshape(2, 6)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out = restricted_loads(py2_pickle({"data": arr, "labels": [1, 2]}, numpy_module=module), "f")
        np.testing.assert_array_equal(out[b"data"], arr)
        assert out[b"labels"] == [1, 2]
    with pytest.raises(DataError, match="not a readable CIFAR python batch"):
        restricted_loads(py2_pickle({"data": arr})[:40], "f")  # truncated pickle


# --------------------------------------------------------------------------------------------
# IDX (Fashion-MNIST, MNIST)
# --------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx_set(d: Path, rng, *, gz: bool, n_train: int = 3, n_test: int = 2) -> tuple[np.ndarray, np.ndarray]:
    train_x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, n_train).astype(np.uint8)
    test_y = rng.integers(0, 10, n_test).astype(np.uint8)
    d.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(IDX_NAMES, (train_x, train_y, test_x, test_y)):
        data = idx_bytes(arr)
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (d / name).write_bytes(data)
    return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_known_answer(tmp_path, rng, gz, name):
    images, labels = write_idx_set(tmp_path, rng, gz=gz)
    ds = load(name, tmp_path)
    assert ds.x.shape == (5, 1, 28, 28) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x, images[:, None].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_array_equal(ds.ids, np.arange(5))
    assert ds.n_classes == 10
    assert ds.class_names[0] == ("T-shirt/top" if name == "fashion-mnist" else "0")


def test_parse_idx_validates_header():
    good = idx_bytes(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(parse_idx(good, "f", ndim=2), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(DataError, match="magic 01000802 is not an IDX header"):
        parse_idx(b"\x01" + good[1:], "f", ndim=2)
    with pytest.raises(DataError, match="unknown IDX type code 0x07"):
        parse_idx(good[:2] + b"\x07" + good[3:], "f", ndim=2)
    with pytest.raises(DataError, match="2 dimensions, expected 3"):
        parse_idx(good, "f", ndim=3)
    with pytest.raises(DataError, match=r"declares shape \(2, 3\) \(6 data bytes\) but the file holds 5"):
        parse_idx(good[:-1], "f", ndim=2)
    with pytest.raises(DataError, match="holds 7"):
        parse_idx(good + b"\x00", "f", ndim=2)


def test_idx_errors(tmp_path, rng):
    write_idx_set(tmp_path, rng, gz=True)
    # images vs labels count
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3))))
    with pytest.raises(DataError, match="has 2 images but .*t10k-labels-idx1-ubyte.gz has 3 labels"):
        load("fashion-mnist", tmp_path)
    # label out of range
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([1, 10]))))
    with pytest.raises(DataError, match="label 10 at record 1 is outside 0..9"):
        load("fashion-mnist", tmp_path)
    # truncated gzip
    truncate(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is truncated or corrupt"):
        load("fashion-mnist", tmp_path)


def test_idx_missing_files_named_with_directory(tmp_path, rng):
    write_idx_set(tmp_path, rng, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        load("mnist", tmp_path)
    msg = str(e.value)
    assert "'t10k-images-idx3-ubyte.gz'" in msg and str(tmp_path) in msg and "train-images" not in msg
    assert "download: true" in msg


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not REAL_FASHION.is_dir(),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist puts it in "
    "/usr/share/datasets/fashion-mnist)",
)
def test_real_fashion_mnist_from_debian_package():
    ds = load("fashion-mnist", None)  # found through the default directory
    assert len(ds) == 70_000 and ds.input_shape == (1, 28, 28)
    assert ds.class_names == FASHION_CLASSES == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    np.testing.assert_array_equal(np.bincount(ds.y), [7000] * 10)
    np.testing.assert_array_equal(ds.y[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])  # the published first labels
    assert ds.x.dtype == np.float32 and ds.x.min() == 0.0 and ds.x.max() == 1.0


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_digits():
    from sklearn.datasets import load_digits

    ds = load("digits", None)
    ref = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.x[:, 0] * 16, ref.images)
    np.testing.assert_array_equal(ds.y, ref.target)
    assert ds.x.max() == 1.0 and ds.n_classes == 10 and ds.kind == "image"


# --------------------------------------------------------------------------------------------
# npz and csv
# --------------------------------------------------------------------------------------------


def test_npz_tabular_and_relative_path(tmp_path, monkeypatch):
    x = np.array([[0.5, 1.0], [2.0, -3.0], [0.0, 0.0]])
    np.savez(tmp_path / "mine.npz", x=x, y=np.array([2, 0, 1]))
    ds = load("npz", tmp_path, path="mine.npz")  # relative to data_dir
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    np.testing.assert_array_equal(ds.y, [2, 0, 1])
    assert ds.kind == "tabular" and ds.n_classes == 3
    monkeypatch.chdir(tmp_path)
    assert len(load("npz", None, path="mine.npz", n_classes=5).class_names) == 5  # relative to the CWD


def test_npz_images(tmp_path):
    imgs = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4) * 7
    np.savez(tmp_path / "img.npz", x=imgs, y=np.array([0.0, 1.0]))
    ds = load("npz", tmp_path, path="img.npz")
    assert ds.kind == "image" and ds.x.shape == (2, 1, 4, 4)
    np.testing.assert_array_equal(ds.x, imgs[:, None].astype(np.float32) / np.float32(255))
    np.savez(tmp_path / "bad.npz", x=imgs.astype(np.float64), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"not \[0, 1\]; divide by 255 or store x as uint8"):
        load("npz", tmp_path, path="bad.npz")


@pytest.mark.parametrize(
    "arrays, params, expected",
    [
        ({"x": np.zeros((2, 2)), "labels": np.zeros(2)}, {}, "no array named 'y' (arrays found: x, labels)"),
        ({"x": np.array([[1.0], [np.nan]]), "y": np.array([0, 1])}, {}, "x row 1 has NaN"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 5])}, {"n_classes": 3}, "label 5 is outside 0..2"),
        ({"x": np.zeros((2, 2)), "y": np.array([0.5, 1])}, {}, "y[0] = 0.5 is not an integer"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, 1])}, {}, "x has shape (3, 2) but y has 2 labels"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0, 1])}, {"kind": "tabular"}, "tabular data needs (N, F)"),
    ],
)
def test_npz_errors(tmp_path, arrays, params, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as e:
        load("npz", tmp_path, path="d.npz", **params)
    assert expected in str(e.value)


def test_npz_object_array_refused_with_reason(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([[1, 2], [3, 4]], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match="'x' is an object array, stored with pickle, which miaudit refuses"):
        load("npz", tmp_path, path="obj.npz")


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match=f"file {tmp_path / 'nope.npz'} not found"):
        load("npz", tmp_path, path="nope.npz")


def test_csv_string_labels_sorted(tmp_path):
    (tmp_path / "d.csv").write_text("a,species,b\n1.5,dog,2\n0,cat,-1\n\n3,emu,4e1\n2,cat,0\n")
    ds = load("csv", tmp_path, path="d.csv", label_column="species")
    np.testing.assert_array_equal(ds.x, np.array([[1.5, 2], [0, -1], [3, 40], [2, 0]], dtype=np.float32))
    assert ds.class_names == ("cat", "dog", "emu")
    np.testing.assert_array_equal(ds.y, [1, 0, 2, 0])
    np.testing.assert_array_equal(ds.ids, np.arange(4))


def test_csv_integer_labels_and_delimiter(tmp_path):
    (tmp_path / "d.csv").write_text("label;f1;f2\n2;1;0\n0;0;1\n")
    ds = load("csv", tmp_path, path="d.csv", delimiter=";")
    np.testing.assert_array_equal(ds.y, [2, 0])
    np.testing.assert_array_equal(ds.x, [[1, 0], [0, 1]])
    assert ds.n_classes == 3


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a,b\n1,2\n", "no column 'label' (columns found: 'a', 'b'); set label_column"),
        ("label,a,b\n1,2,3\n0,x,3\n", "line 3, column 'a' is 'x', not a number"),
        ("label,a,b\n1,2,3\n0,,3\n", "line 3, column 'a' is empty, not a number"),
        ("label,a,b\n1,2,nan\n", "line 2, column 'b' is nan; NaN and infinite values are not allowed"),
        ("label,a,b\n1,2,3\n0,1\n", "line 3 has 2 fields but the header has 3"),
        ("", "is empty; expected a header row"),
        ("label,a\n", "has a header but no data rows"),
        ("label,a\n-1,2\n1,2\n", "label -1 is negative"),
    ],
)
def test_csv_errors(tmp_path, text, expected):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError) as e:
        load("csv", tmp_path, path="d.csv")
    assert expected in str(e.value)
    assert str(tmp_path / "d.csv") in str(e.value)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_every_real_loader_is_registered_with_its_files():
    names = set(DATASETS.names())
    assert {"purchase100", "texas100", "cifar10", "cifar100", "fashion-mnist", "mnist", "digits", "npz", "csv"} <= names
    for name in ("purchase100", "texas100", "cifar10", "cifar100", "fashion-mnist", "mnist"):
        spec = DATASETS.get(name)
        assert spec.files and spec.description
    assert DATASETS.get("fashion-mnist").default_dirs[0] == "/usr/share/datasets/fashion-mnist"
    assert DATASETS.get("cifar10").url.startswith("https://www.cs.toronto.edu/")
    assert DATASETS.get("purchase100").url is None  # no stable pinned location
