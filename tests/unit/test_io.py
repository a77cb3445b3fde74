"""Atomic writes, the artefact list, canonical JSON, and loaders that never unpickle."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from miaudit.errors import DataError, RunDirError
from miaudit.io import (
    ARTEFACTS,
    atomic_path,
    dumps_json,
    fingerprint,
    listed_artefacts,
    load_npy,
    load_weights,
    open_user_npz,
    read_json,
    save_npy,
    save_weights,
    start_artefact_list,
    write_json,
    write_npy_stream,
    write_text,
)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_text(path, "old")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            1 / 0
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_directory_or_fifo_at_the_name_is_never_replaced(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(RunDirError, match="exists and is a directory"):
        write_text(tmp_path / "d", "x")
    os.mkfifo(tmp_path / "f")
    with pytest.raises(RunDirError, match="not a regular file"):
        write_text(tmp_path / "f", "x")


def test_written_files_are_listed_once_relative_to_their_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    start_artefact_list(run)
    write_text(run / "a.txt", "1")
    write_text(run / "a.txt", "2")  # a rewrite is listed once
    save_npy(run / "signals" / "parts" / "m.npy", np.zeros(3))
    (run / "user.txt").write_text("not miaudit's")
    lines = (run / ARTEFACTS).read_text().splitlines()
    assert lines == ["a.txt", "signals/parts/m.npy"]
    # lines pointing outside the run, absolute paths and files gone are never returned
    with open(run / ARTEFACTS, "a") as fh:
        fh.write("../outside.txt\n/etc/passwd\ngone.txt\n")
    (tmp_path / "outside.txt").write_text("x")
    assert sorted(p.name for p in listed_artefacts(run)) == ["a.txt", "m.npy"]


def _through_a_file(tmp_path, text):
    write_text(tmp_path / "doc.json", text)
    return read_json(tmp_path / "doc.json")


def test_json_is_canonical_and_nan_is_null(tmp_path):
    obj = {"b": np.float32(0.5), "a": [np.int64(3), float("nan")], "c": np.array([True, False]), "p": tmp_path}
    text = dumps_json(obj)
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")
    assert _through_a_file(tmp_path, text) == {"a": [3, None], "b": 0.5, "c": [True, False], "p": str(tmp_path)}
    assert fingerprint({"x": 1, "y": 2}) == fingerprint({"y": 2, "x": 1}) != fingerprint({"x": 1, "y": 3})
    assert len(fingerprint({})) == 16


def test_read_json_refuses_what_miaudit_did_not_write(tmp_path):
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DataError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")
    write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(DataError, match="expected a JSON object, found list"):
        read_json(tmp_path / "list.json")
    assert read_json(tmp_path / "list.json", kind=list) == [1, 2]
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_json(tmp_path / "bin.json")


def test_arrays_round_trip_and_pickles_are_refused(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_npy(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy", mmap=True), a)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="damaged or not a .npy array"):
        load_npy(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="missing"):
        load_npy(tmp_path / "none.npy")
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(DataError, match="signals.npz is not a readable .npz file"):
        open_user_npz(tmp_path / "p.npz", where="signals.npz")
    with pytest.raises(DataError, match="holds a single array"):
        open_user_npz(tmp_path / "a.npy", where="a.npy")


def test_npy_stream_checks_the_bytes_it_was_given(tmp_path):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    write_npy_stream(tmp_path / "s.npy", (2, 3), np.float64, lambda fh: [fh.write(r.tobytes()) for r in a])
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), a)
    with pytest.raises(RunDirError, match="wrote 24 bytes of array data, expected 48"):
        write_npy_stream(tmp_path / "t.npy", (2, 3), np.float64, lambda fh: fh.write(a[0].tobytes()))
    assert not (tmp_path / "t.npy").exists()


def test_weights_round_trip_as_safetensors_and_garbage_is_a_data_error(tmp_path):
    w = {"w": torch.randn(3, 2), "b": torch.zeros(2)}
    save_weights(tmp_path / "m.safetensors", w)
    back = load_weights(tmp_path / "m.safetensors")
    assert back.keys() == w.keys() and all(torch.equal(back[k], w[k]) for k in w)
    (tmp_path / "x.safetensors").write_bytes(pickle.dumps(w))
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_weights(tmp_path / "x.safetensors")
