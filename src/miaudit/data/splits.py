"""Seeded, disjoint splits of a dataset into audit pool / population / validation / test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """Row indices into a Dataset; the four never overlap.

    audit: records whose membership is tested (each model trains on half of them).
    population: never trained on by any model (RMIA's z, thresholds, shadow data).
    validation: early stopping and model selection only.
    test: utility (test accuracy).
    """

    audit: np.ndarray
    population: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"audit": self.audit, "population": self.population, "validation": self.validation, "test": self.test}


def make_splits(
    n_records: int,
    *,
    audit: int,
    population: int,
    validation: int,
    test: int,
    rng: np.random.Generator,
) -> Splits:
    """Draw disjoint index sets of the given sizes from a seeded permutation of ``n_records``."""
    sizes = {"audit": audit, "population": population, "validation": validation, "test": test}
    for k, v in sizes.items():
        if v < 0:
            raise ConfigError(f"data.splits.{k}: must be >= 0, got {v}")
    if audit < 2:
        raise ConfigError(f"data.splits.audit: must be at least 2, got {audit}")
    total = sum(sizes.values())
    if total > n_records:
        raise ConfigError(
            f"data.splits: sizes add up to {total} but the dataset has only {n_records} records "
            f"({', '.join(f'{k}={v}' for k, v in sizes.items())})"
        )
    perm = rng.permutation(n_records)
    out: dict[str, np.ndarray] = {}
    start = 0
    for k, v in sizes.items():
        out[k] = np.sort(perm[start : start + v]).astype(np.int64)
        start += v
    return Splits(**out)


SPLIT_NAMES = ("audit", "population", "validation", "test")


def read_split_indices(path: Path | str, *, key: str = "data.splits.indices") -> dict[str, np.ndarray]:
    """The row indices of each split from an ``.npz`` (``data.splits.indices``), checked.

    Arrays ``audit`` and ``test`` are required, ``population`` and ``validation`` may be left
    out (empty); each is 1-D, integer, non-negative and without repeats, and no row is in two
    splits. A run's own ``splits.npz`` qualifies (its ``audit_ids`` are ignored). Row bounds
    need the dataset: :func:`splits_from_indices`. Every problem is a one-line ConfigError.
    """
    from miaudit.errors import UserError
    from miaudit.io import open_user_npz

    where = f"{key}: {path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no such file")
    try:
        z = open_user_npz(path, where=where)
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    with z:
        unknown = sorted(set(z.files) - {*SPLIT_NAMES, "audit_ids"})
        if unknown:
            raise ConfigError(f"{where}: unknown array(s) {', '.join(unknown)} (expected {', '.join(SPLIT_NAMES)})")
        missing = [k for k in ("audit", "test") if k not in z.files]
        if missing:
            raise ConfigError(f"{where}: no {' or '.join(missing)} array (audit and test are required)")
        out: dict[str, np.ndarray] = {}
        for k in SPLIT_NAMES:
            a = z[k] if k in z.files else np.zeros(0, dtype=np.int64)
            if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
                raise ConfigError(f"{where}: {k} must be a 1-D array of integer row indices, got {a.dtype} of shape {a.shape}")
            a = a.astype(np.int64)
            if a.size and a.min() < 0:
                raise ConfigError(f"{where}: {k} holds a negative row index ({int(a.min())})")
            uniq = np.unique(a)
            if len(uniq) != len(a):
                raise ConfigError(f"{where}: {k} lists {len(a) - len(uniq)} row(s) more than once")
            out[k] = uniq  # sorted, as drawn splits are
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1:]:
            both = np.intersect1d(out[a], out[b])
            if len(both):
                raise ConfigError(f"{where}: {a} and {b} share {len(both)} row(s), e.g. row {int(both[0])} (splits must be disjoint)")
    if len(out["audit"]) < 2 or len(out["test"]) < 1:
        raise ConfigError(f"{where}: audit needs at least 2 rows and test at least 1")
    return out


def splits_from_indices(arrays: dict[str, np.ndarray], n_records: int, *, key: str = "data.splits.indices") -> Splits:
    """:class:`Splits` from checked index arrays, refusing rows the dataset does not have."""
    for k, a in arrays.items():
        if a.size and int(a.max()) >= n_records:
            raise ConfigError(f"{key}: {k} has row {int(a.max())} but the dataset has {n_records} records "
                              f"(rows 0..{n_records - 1})")
    return Splits(**{k: arrays[k] for k in SPLIT_NAMES})
