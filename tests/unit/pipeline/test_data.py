"""The data stage: seeded disjoint splits, explicit split rows (data.splits.indices, issue 16), and a
target audit's members and non-members joined."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError
from miaudit.pipeline.data import split_data, target_records

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


def test_split_data_is_disjoint_sized_and_drawn_from_the_run_seed():
    sizes = ["data.splits.audit=120", "data.splits.population=80", "data.splits.validation=40", "data.splits.test=60"]
    ds, s = split_data(load_config(None, [*SMALL, *sizes]))
    assert s.sizes() == {"audit": 120, "population": 80, "validation": 40, "test": 60}
    rows = np.concatenate(list(s.as_dict().values()))
    assert len(np.unique(rows)) == len(rows) == 300 and rows.min() >= 0 and rows.max() < len(ds) == 400
    ds2, again = split_data(load_config(None, [*SMALL, *sizes]))
    np.testing.assert_array_equal(ds2.x, ds.x)
    for k, v in s.as_dict().items():
        np.testing.assert_array_equal(again.as_dict()[k], v)
    # another seed: another dataset draw and other rows (the same seed gives the same whatever runs before)
    _, other = split_data(load_config(None, [*SMALL, *sizes, "seed=1"]))
    assert not np.array_equal(other.audit, s.audit)


def test_target_records_audit_members_and_as_many_non_members_and_drop_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    mx, my = rng.random((60, 5)).astype(np.float32), rng.integers(0, 3, 60)
    nx, ny = rng.random((50, 5)).astype(np.float32), rng.integers(0, 3, 50)
    nx[:4], ny[:4] = mx[:4], my[:4]  # four exact duplicates of members among the non-members
    _file(tmp_path / "m.npz", x=mx, y=my)
    _file(tmp_path / "n.npz", x=nx, y=ny)
    (tmp_path / "w.safetensors").write_bytes(b"")
    cfg = load_config(None, [
        f"target.weights={tmp_path / 'w.safetensors'}", "model.name=mlp",
        "target.members.name=npz", f"target.members.params.path={tmp_path / 'm.npz'}",
        "target.non_members.name=npz", f"target.non_members.params.path={tmp_path / 'n.npz'}",
        "data.splits.audit=40", "data.splits.population=10", "data.splits.validation=5", "data.splits.test=100",
    ])
    rec = target_records(cfg)
    assert rec.n_duplicates == 4 and len(rec.dataset) == 60 + 46
    s = rec.splits
    assert rec.member[s.audit].sum() == 20 and (~rec.member[s.audit]).sum() == 20  # half each
    assert s.sizes() == {"audit": 40, "population": 10, "validation": 5, "test": 46 - 20 - 15}  # test: what is left
    rows = np.concatenate(list(s.as_dict().values()))
    assert len(np.unique(rows)) == len(rows) and not rec.member[rows[40:]].any()  # the rest: non-members only
    assert rec.origins[0] == "members:0" and rec.origins[60] == "non_members:4"
    again = target_records(cfg)
    np.testing.assert_array_equal(again.splits.audit, s.audit)
