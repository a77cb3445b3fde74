"""Texas100: features and labels files or an archive, known answers and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import DataError

from dataset_files import load, write_tar_gz


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
