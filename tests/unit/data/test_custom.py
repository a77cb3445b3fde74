"""The user's own data: .npz and .csv files, known answers and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import DataError

from dataset_files import load


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
