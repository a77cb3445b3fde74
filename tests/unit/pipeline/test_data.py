"""data.splits.indices: explicit split rows, checked (issue 16: reproducing another tool's setup)."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.config import load_config
from miaudit.errors import ConfigError
from miaudit.pipeline.data import split_data

SMALL = ["data.params.n_records=400", "data.params.n_features=20", "data.params.n_classes=4", "data.params.n_parents=2"]


def _file(path, **arrays):
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def test_explicit_rows_are_used_and_sizes_follow(tmp_path):
    f = _file(tmp_path / "s.npz", audit=np.arange(0, 200), population=np.arange(200, 300), test=np.arange(350, 400))
    cfg = load_config(None, [*SMALL, f"data.splits.indices={f}"])
    s = cfg.data.splits
    assert (s.audit, s.population, s.validation, s.test) == (200, 100, 0, 50)
    _, splits = split_data(cfg)
    assert splits.audit.tolist() == list(range(200)) and splits.population.tolist() == list(range(200, 300))
    assert splits.validation.size == 0 and splits.test.tolist() == list(range(350, 400))


def test_relative_path_is_relative_to_the_config_file(tmp_path):
    _file(tmp_path / "s.npz", audit=[0, 1, 2], test=[3])
    (tmp_path / "c.yaml").write_text("data:\n  splits:\n    indices: s.npz\n")
    cfg = load_config(tmp_path / "c.yaml", SMALL)
    assert cfg.data.splits.indices == tmp_path / "s.npz" and cfg.data.splits.audit == 3


@pytest.mark.parametrize(("arrays", "message"), [
    ({"audit": [0, 1, 2], "population": [2, 3], "test": [5]}, "audit and population share 1 row(s), e.g. row 2"),
    ({"audit": [0, 1, 1], "test": [5]}, "audit lists 1 row(s) more than once"),
    ({"audit": [0, -1], "test": [5]}, "negative row index"),
    ({"audit": [0.5, 1.0], "test": [5]}, "1-D array of integer row indices"),
    ({"audit": [0, 1]}, "no test array"),
    ({"audit": [0, 1], "test": [3], "train": [4]}, "unknown array(s) train"),
])
def test_bad_indices_are_one_line_errors(tmp_path, arrays, message):
    f = _file(tmp_path / "s.npz", **arrays)
    with pytest.raises(ConfigError) as err:
        load_config(None, [*SMALL, f"data.splits.indices={f}"])
    assert message in str(err.value) and "data.splits.indices" in str(err.value) and "\n" not in str(err.value)


def test_rows_beyond_the_dataset_and_conflicting_sizes(tmp_path):
    f = _file(tmp_path / "s.npz", audit=np.arange(10), test=[400])  # 400 records: rows 0..399
    cfg = load_config(None, [*SMALL, f"data.splits.indices={f}"])
    with pytest.raises(ConfigError, match=r"test has row 400 but the dataset has 400 records \(rows 0..399\)"):
        split_data(cfg)
    with pytest.raises(ConfigError, match="data.splits.audit: 50 but indices"):
        load_config(None, [*SMALL, f"data.splits.indices={f}", "data.splits.audit=50"])
    with pytest.raises(ConfigError, match="no such file"):
        load_config(None, [*SMALL, f"data.splits.indices={tmp_path / 'missing.npz'}"])


def test_fingerprint_follows_the_rows_not_the_file_name(tmp_path):
    a = _file(tmp_path / "a.npz", audit=[0, 1, 2], test=[3])
    b = _file(tmp_path / "b.npz", audit=[0, 1, 2], test=[3])
    c = _file(tmp_path / "c.npz", audit=[0, 1, 4], test=[3])
    fp = [load_config(None, [*SMALL, f"data.splits.indices={p}"]).pool_fingerprint() for p in (a, b, c)]
    assert fp[0] == fp[1] != fp[2]
    assert fp[0] != load_config(None, SMALL).pool_fingerprint()
