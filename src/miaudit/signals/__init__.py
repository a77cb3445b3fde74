"""The signals of a pool: every pool member's logits on the audit pool, population and test split.

Computed once in batches and cached; every attack reads from here. For image datasets each
record is also queried under A deterministic augmentations (identity first), as LiRA does.
Per-member parts are written as they finish (resumable), then assembled into memory-mappable
``.npy`` arrays:

- ``audit_logits.npy``       (M, A, N, C) float32
- ``population_logits.npy``  (M, A, P, C) float32
- ``test_logits.npy``        (M, 1, T, C) float32
- ``in_mask.npy`` (M, N) bool, ``labels.npy`` (N,), ``population_labels.npy`` (P,), ``test_labels.npy`` (T,)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.errors import DataError
from miaudit.io import load_npy, read_json


@dataclass(frozen=True)
class Signals:
    """The cached pool outputs every attack reads (arrays may be memory-mapped)."""

    logits: np.ndarray  # (M, A, N, C)
    in_mask: np.ndarray  # (M, N) bool
    labels: np.ndarray  # (N,)
    population_logits: np.ndarray | None  # (M, A, P, C)
    population_labels: np.ndarray | None  # (P,)
    test_logits: np.ndarray | None = None  # (M, 1, T, C)
    test_labels: np.ndarray | None = None  # (T,)
    is_image: bool = False
    #: the records themselves, for attacks that model a record's features (qmia); not cached
    features: np.ndarray | None = None  # (N, ...) audited records
    population_features: np.ndarray | None = None  # (P, ...)

    @property
    def n_models(self) -> int:
        return self.logits.shape[0]


def check_cached_signals(signals: Signals, *, n_models: int, n_audit: int) -> None:
    """Raise ``DataError`` unless cached ``signals`` have the shapes of a pool of ``n_models`` on ``n_audit`` records."""
    m, _, n, _ = signals.logits.shape
    if (m, n) != (n_models, n_audit) or signals.in_mask.shape != (n_models, n_audit) or signals.labels.shape != (n_audit,):
        raise DataError(f"cached signals hold shape {signals.logits.shape} (in_mask {signals.in_mask.shape}), "
                        f"expected {n_models} models on {n_audit} records")


def load_signals(directory: Path, *, mmap: bool = True) -> Signals:
    """Open cached signals (memory-mapped by default); a damaged file is a ``DataError`` naming it."""
    d = Path(directory)
    if not (d / "manifest.json").is_file():
        raise DataError(f"{d}: no finished signals (rerun `miaudit run` with the same config to compute them)")
    man = read_json(d / "manifest.json")
    arrays = {name: load_npy(d / f"{name}.npy", mmap=mmap and name.endswith("logits")) for name in (
        "audit_logits", "in_mask", "labels", "population_logits", "population_labels", "test_logits", "test_labels")}
    logits, pop = arrays["audit_logits"], arrays["population_logits"]
    expected = {"audit_logits": 4, "population_logits": 4, "test_logits": 4, "in_mask": 2, "labels": 1,
                "population_labels": 1, "test_labels": 1}
    for name, ndim in expected.items():
        if arrays[name].ndim != ndim:
            raise DataError(f"{d / name}.npy: damaged (shape {arrays[name].shape}); rerun `miaudit run` with the "
                            "same config to recompute it")
    m, _, n, _ = logits.shape
    for name, shape in (("in_mask", (m, n)), ("labels", (n,)), ("population_labels", pop.shape[2:3]),
                        ("test_labels", arrays["test_logits"].shape[2:3])):
        if arrays[name].shape != shape:
            raise DataError(f"{d / name}.npy: shape {arrays[name].shape} does not match the logits' {shape}; "
                            "damaged: rerun `miaudit run` with the same config to recompute it")
    return Signals(
        logits=logits,
        in_mask=arrays["in_mask"],
        labels=arrays["labels"],
        population_logits=pop if pop.shape[2] > 0 else None,
        population_labels=arrays["population_labels"],
        test_logits=arrays["test_logits"],
        test_labels=arrays["test_labels"],
        is_image=bool(man.get("is_image", False)),
    )
