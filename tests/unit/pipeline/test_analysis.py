"""The analysis stage's own parts: record hashes, the run's splits read back, --compare's checks.
The stage end to end: pipeline/test_audit_signals.py (fabricated signals), integration/ (trained pools)."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import DataError
from miaudit.pipeline.analysis import check_compare_dir, load_splits, record_hashes
from miaudit.rundir import RunDir


def test_record_hashes_follow_the_content_not_the_position():
    x = np.random.default_rng(0).random((50, 2, 3)).astype(np.float32)
    h = record_hashes(x)
    assert h.shape == (50,) and h.dtype == np.int64 and (h >= 0).all() and len(set(h.tolist())) == 50
    np.testing.assert_array_equal(record_hashes(x[::-1].copy()), h[::-1])
    y = x.copy()
    y[7, 1, 2] += 1e-6  # one feature of one record changed
    changed = record_hashes(y) != h
    assert changed.tolist() == [i == 7 for i in range(50)]


def test_splits_read_back_and_damage_is_one_line(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(DataError, match="splits.npz not found: is .* a miaudit run directory"):
        load_splits(rd)
    parts = {"audit": np.arange(4), "population": np.arange(4, 6), "validation": np.arange(6, 7), "test": np.arange(7, 9)}
    np.savez(rd.splits, **parts)
    s = load_splits(rd)
    for k, v in parts.items():
        np.testing.assert_array_equal(getattr(s, k), v)
    np.savez(rd.splits, **{**parts, "test": np.array([0.5])})
    with pytest.raises(DataError, match="not 1-D integer index arrays"):
        load_splits(rd)
    np.savez(rd.splits, audit=np.arange(3))
    with pytest.raises(DataError, match=r"damaged \(KeyError"):
        load_splits(rd)
    rd.splits.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="damaged"):
        load_splits(rd)


def test_compare_needs_a_finished_pool_run(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(DataError, match="no results.json there; finish that run first"):
        check_compare_dir(tmp_path)
    rd.results.write_text("{}")
    with pytest.raises(DataError, match="not a `miaudit run` directory"):
        check_compare_dir(tmp_path)  # an `miaudit audit` directory: no signals/ with record ids
    rd.signals.mkdir()
    np.save(rd.signals / "in_mask.npy", np.zeros((2, 3), bool))
    np.save(rd.signals / "record_ids.npy", np.arange(3))
    assert check_compare_dir(tmp_path) == rd
