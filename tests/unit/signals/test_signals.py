"""Cached signals: the shape check, and load_signals refusing what is missing or damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from miaudit.errors import DataError
from miaudit.signals import Signals, check_cached_signals, load_signals

M, A, N, P, T, C = 4, 2, 10, 6, 5, 3


def _write(d, **replace):
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "audit_logits": rng.normal(size=(M, A, N, C)).astype(np.float32),
        "in_mask": rng.random((M, N)) < 0.5,
        "labels": np.arange(N) % C,
        "population_logits": rng.normal(size=(M, A, P, C)).astype(np.float32),
        "population_labels": np.arange(P) % C,
        "test_logits": rng.normal(size=(M, 1, T, C)).astype(np.float32),
        "test_labels": np.arange(T) % C,
        **replace,
    }
    for name, a in arrays.items():
        np.save(d / f"{name}.npy", a)
    (d / "manifest.json").write_text(json.dumps({"is_image": True}))
    return arrays


def test_round_trip_memory_maps_the_logits(tmp_path):
    arrays = _write(tmp_path / "signals")
    s = load_signals(tmp_path / "signals")
    assert s.n_models == M and s.is_image
    assert isinstance(s.logits, np.memmap) and not isinstance(s.labels, np.memmap)
    np.testing.assert_array_equal(s.logits, arrays["audit_logits"])
    np.testing.assert_array_equal(s.population_labels, arrays["population_labels"])
    assert not isinstance(load_signals(tmp_path / "signals", mmap=False).logits, np.memmap)
    check_cached_signals(s, n_models=M, n_audit=N)
    with pytest.raises(DataError, match=r"expected 5 models on 10 records"):
        check_cached_signals(s, n_models=5, n_audit=N)


def test_an_empty_population_is_none(tmp_path):
    _write(tmp_path / "s", population_logits=np.zeros((M, A, 0, C), np.float32), population_labels=np.zeros(0, int))
    assert load_signals(tmp_path / "s").population_logits is None


def test_unfinished_or_damaged_signals_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="no finished signals"):
        load_signals(tmp_path)
    _write(tmp_path / "a", labels=np.arange(N + 1) % C)
    with pytest.raises(DataError, match=r"labels.npy: shape \(11,\) does not match the logits' \(10,\)"):
        load_signals(tmp_path / "a")
    _write(tmp_path / "b", in_mask=np.zeros(N, bool))
    with pytest.raises(DataError, match=r"in_mask.npy: damaged \(shape \(10,\)\)"):
        load_signals(tmp_path / "b")
    _write(tmp_path / "c")
    (tmp_path / "c" / "test_logits.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="test_logits.npy: damaged or not a .npy array"):
        load_signals(tmp_path / "c")


def test_signals_without_a_population_or_test_split():
    s = Signals(np.zeros((2, 1, 3, 2)), np.zeros((2, 3), bool), np.zeros(3, int), None, None)
    assert s.n_models == 2 and s.test_logits is None and not s.is_image
