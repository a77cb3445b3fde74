"""The user's planted-records file: one-line errors and the kinds it lists."""

import numpy as np
import pytest

from miaudit.data.planted import read_planted
from miaudit.errors import DataError


def test_planted_file_errors(tmp_path):
    ids = np.arange(10)
    bad = {"x\n": "not an integer", "3\n3\n": "listed twice", "42\n": "no record with id 42",
           "2,natural\n": "reserved", "# nothing\n": "lists no record"}
    for text, msg in bad.items():
        (tmp_path / "p.txt").write_text(text)
        with pytest.raises(DataError, match=msg):
            read_planted(tmp_path / "p.txt", ids)
    with pytest.raises(DataError, match="not found"):
        read_planted(tmp_path / "missing.txt", ids)
    (tmp_path / "p.txt").write_text("id,kind\n1,canary\n4\n")
    base = np.array(["", "", "x", "", "", "", "", "", "", ""])
    assert read_planted(tmp_path / "p.txt", ids, base).tolist() == ["", "canary", "x", "", "planted"] + [""] * 5
