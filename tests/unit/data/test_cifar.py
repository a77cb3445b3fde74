"""CIFAR-10/100 on small fabricated archives of the real binary and python formats, plus error paths
and the restricted unpickler (the other loaders: test_<loader>.py here)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from miaudit.data.cifar import CIFAR10_CLASSES, RestrictedUnpickler, restricted_loads
from miaudit.errors import DataError

from dataset_files import load, truncate, write_tar_gz


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
