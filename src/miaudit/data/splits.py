"""Seeded, disjoint splits of a dataset into audit pool / population / validation / test."""

from __future__ import annotations

from dataclasses import dataclass

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
