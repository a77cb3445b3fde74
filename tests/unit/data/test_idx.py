"""IDX files (Fashion-MNIST, MNIST): known answers, header checks, missing files named."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from miaudit.data.idx import FASHION_CLASSES, parse_idx
from miaudit.errors import DataError

from dataset_files import load, truncate


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
