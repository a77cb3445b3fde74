"""`synthetic-purchase`: a Purchase100-like generator with planted atypical records.

Real Purchase100 classes are k-means clusters of shopping baskets, so classes overlap. Here
every class prototype is a lightly perturbed copy of one of a few *parent* bit vectors, and
each record is its prototype with a fraction of its bits flipped. With the defaults the
study's FCN reaches ~100% train and ~85% test accuracy (DESIGN.md), i.e. it generalises
well but not perfectly, as on the real data.

A fraction of records is planted as atypical, of three kinds, recorded as ground truth:

- ``mislabelled``: drawn from its class, then given another class's label;
- ``rare-subcluster``: drawn around a small secondary prototype of its class (a few records
  per sub-cluster) that lies near a different parent;
- ``heavy-noise``: drawn from its class with a much higher bit-flip rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from miaudit.data.base import MAX_CLASSES, Dataset, register_dataset

PLANTED_KINDS = ("mislabelled", "rare-subcluster", "heavy-noise")


#: largest generated matrix, in cells
MAX_CELLS = 2**31


class SyntheticPurchaseParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_records: int = Field(31_000, gt=0, le=100_000_000, description="records generated (must cover all four splits)")
    n_features: int = Field(600, gt=0, le=1_000_000, description="binary features, as Purchase100")
    n_classes: int = Field(100, ge=2, le=MAX_CLASSES, description="classes, as Purchase100")
    n_parents: int = Field(20, ge=1, description="parent bit vectors; classes sharing one overlap")
    density: float = Field(0.2, gt=0, lt=1, description="share of ones in a parent vector")
    class_flip: float = Field(0.01, ge=0, lt=0.5, description="bits flipped from parent to class prototype")
    record_flip: float = Field(0.12, ge=0, lt=0.5, description="bits flipped from prototype to record")
    planted_fraction: float = Field(0.02, ge=0, le=0.5, description="share of records planted atypical")
    heavy_flip: float = Field(0.35, ge=0, le=0.5, description="bit-flip rate of heavy-noise records")
    subcluster_size: int = Field(4, ge=1, description="records per rare sub-cluster")

    @model_validator(mode="after")
    def _fits(self) -> SyntheticPurchaseParams:
        # checked before anything is allocated: the records are one float32 (n_records, n_features) matrix
        if self.n_records * self.n_features > MAX_CELLS:
            raise ValueError(f"n_records × n_features = {self.n_records * self.n_features:,} cells, over the "
                             f"{MAX_CELLS:,} (8 GiB of float32) this generator builds in memory")
        return self


def _flip(bits: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(bits.shape) < rate, 1 - bits, bits).astype(np.uint8)


def generate_synthetic_purchase(p: SyntheticPurchaseParams, seed: int) -> Dataset:
    """Deterministic for ``seed``: the same parameters and seed give the same arrays."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED_DA7A]))
    n, f, c = p.n_records, p.n_features, p.n_classes
    parents = (rng.random((p.n_parents, f)) < p.density).astype(np.uint8)
    class_parent = rng.integers(0, p.n_parents, size=c)
    protos = _flip(parents[class_parent], p.class_flip, rng)  # (C, F)

    y = rng.integers(0, c, size=n).astype(np.int64)
    x = _flip(protos[y], p.record_flip, rng)  # (N, F)
    planted = np.full(n, "", dtype="<U16")

    n_planted = int(round(p.planted_fraction * n))
    chosen = rng.permutation(n)[:n_planted]
    per_kind = np.array_split(chosen, len(PLANTED_KINDS))
    mis, sub, heavy = per_kind

    # mislabelled: keep the features, move the label to another class
    shift = rng.integers(1, c, size=len(mis))
    y[mis] = (y[mis] + shift) % c
    planted[mis] = "mislabelled"

    # rare sub-clusters: small groups around a secondary prototype near another parent
    for group in np.array_split(sub, max(1, int(np.ceil(len(sub) / p.subcluster_size)))):
        if len(group) == 0:
            continue
        cls = y[group[0]]
        other = (class_parent[cls] + rng.integers(1, max(2, p.n_parents))) % p.n_parents
        sub_proto = _flip(parents[other], p.class_flip, rng)
        y[group] = cls
        x[group] = _flip(np.broadcast_to(sub_proto, (len(group), f)), p.record_flip, rng)
        planted[group] = "rare-subcluster"

    # heavy noise: redraw from the class prototype with a high flip rate
    x[heavy] = _flip(protos[y[heavy]], p.heavy_flip, rng)
    planted[heavy] = "heavy-noise"

    return Dataset(
        name="synthetic-purchase",
        x=x.astype(np.float32),
        y=y,
        ids=np.arange(n, dtype=np.int64),
        kind="tabular",
        class_names=tuple(f"class_{k}" for k in range(c)),
        planted=planted,
        source=f"generated (seed {seed})",
    )


@register_dataset(
    "synthetic-purchase",
    kind="tabular",
    description="Purchase100-like binary baskets with planted atypical records (embedded default; no files)",
    params=SyntheticPurchaseParams,
)
def load_synthetic_purchase(params: SyntheticPurchaseParams, data_dir: Path | None, seed: int) -> Dataset:
    return generate_synthetic_purchase(params, seed)
