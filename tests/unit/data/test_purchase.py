"""Purchase100: the text, .npy and .tgz forms, known answers and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.data.purchase import _parse_general, parse_numeric_text
from miaudit.errors import DataError

from dataset_files import load, write_tar_gz


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
