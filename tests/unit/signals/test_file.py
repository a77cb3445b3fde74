"""The signals-file format: validation errors are one line naming the array; good files round-trip."""

import numpy as np
import pytest

from miaudit.errors import DataError
from miaudit.signals.file import SignalsFileWarning, load_signals_file, save_signals_file, validate_signals


def good(rng, m=4, n=10, c=3, p=6):
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    return {
        "logits": rng.normal(size=(m, n, c)).astype(np.float32),
        "labels": rng.integers(0, c, n),
        "in_mask": in_mask,
        "population_logits": rng.normal(size=(m, p, c)).astype(np.float32),
        "population_labels": rng.integers(0, c, p),
    }


def write(tmp_path, arrays):
    path = tmp_path / "s.npz"
    np.savez(path, **arrays)
    return path


def test_good_file_loads_with_one_query(tmp_path, rng):
    sig = load_signals_file(write(tmp_path, good(rng)))
    assert sig.logits.shape == (4, 1, 10, 3) and sig.population_logits.shape == (4, 1, 6, 3)
    assert sig.in_mask.dtype == bool and not sig.is_image


def test_round_trip_through_save(tmp_path, rng):
    sig = load_signals_file(write(tmp_path, good(rng)))
    save_signals_file(tmp_path / "t.npz", sig)
    back = load_signals_file(tmp_path / "t.npz")
    assert np.array_equal(back.logits, sig.logits) and np.array_equal(back.in_mask, sig.in_mask)
    assert np.array_equal(back.population_labels, sig.population_labels)


def test_four_d_logits_are_augmented_queries(tmp_path, rng):
    a = good(rng)
    a["logits"] = np.repeat(a["logits"][:, None], 3, axis=1)
    a["population_logits"] = np.repeat(a["population_logits"][:, None], 3, axis=1)
    sig = load_signals_file(write(tmp_path, a))
    assert sig.logits.shape == (4, 3, 10, 3) and sig.is_image


def test_zero_one_integer_mask_is_converted(tmp_path, rng):
    a = good(rng)
    a["in_mask"] = a["in_mask"].astype(np.int64)
    assert load_signals_file(write(tmp_path, a)).in_mask.dtype == bool


def test_unbalanced_membership_warns_but_loads(tmp_path, rng):
    a = good(rng)
    a["in_mask"][0, :3] = True  # more members for model 0 (a row all True has no non-members: refused)
    with pytest.warns(SignalsFileWarning, match="balanced"):
        load_signals_file(write(tmp_path, a))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("labels"), "labels: missing"),
        (lambda a: a.__setitem__("logits", a["logits"][0]), "logits: expected shape"),
        (lambda a: a.__setitem__("logits", a["logits"].astype(np.int64)), "logits: expected a float array"),
        (lambda a: a["logits"].__setitem__((0, 0, 0), np.nan), "logits: 1 NaN or infinite"),
        (lambda a: a["logits"].__setitem__((1, 2, 0), np.inf), "logits: 1 NaN or infinite"),
        (lambda a: a.__setitem__("labels", a["labels"][:-1]), r"labels: expected shape \(10,\)"),
        (lambda a: a["labels"].__setitem__(0, 3), r"labels: labels must lie in 0..2"),
        (lambda a: a.__setitem__("labels", a["labels"].astype(float)), "labels: expected integer"),
        (lambda a: a.__setitem__("in_mask", a["in_mask"][:, :-1]), r"in_mask: expected shape \(4, 10\)"),
        (lambda a: a.__setitem__("in_mask", a["in_mask"] * 2), "in_mask: expected booleans"),
        (lambda a: a.__setitem__("in_mask", a["in_mask"].astype(float)), "in_mask: expected booleans"),
        (lambda a: a.pop("population_labels"), "population_labels: missing; it is required together with population_logits"),
        (lambda a: a.__setitem__("population_logits", a["population_logits"][:3]), "population_logits: has 3 models"),
        (lambda a: a.__setitem__("population_logits", a["population_logits"][..., :2]), "population_logits: has 2 classes"),
        (lambda a: a.__setitem__("logits", a["logits"][:1]), "at least 2 models"),
    ],
)
def test_each_problem_is_one_line_naming_the_array(tmp_path, rng, change, message):
    a = good(rng)
    change(a)
    with pytest.raises(DataError, match=message) as info:
        load_signals_file(write(tmp_path, a))
    assert "\n" not in str(info.value)


def test_pickled_objects_and_non_npz_files_are_refused(tmp_path, rng):
    a = good(rng)
    a["labels"] = np.array([object()] * 10, dtype=object)
    with pytest.raises(DataError, match="labels: holds Python objects"):
        load_signals_file(write(tmp_path, a))
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        load_signals_file(tmp_path / "one.npy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_signals_file(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="not found"):
        load_signals_file(tmp_path / "missing.npz")


def test_validate_accepts_plain_dicts(rng):
    sig = validate_signals(good(rng))
    assert sig.n_models == 4
