"""The one attack signature, its input record, and the attack registry.

An attack is ``fn(inp: AttackInput, **params) -> (N,) float64``: finite, higher = more
likely a member. It sees the target's outputs, the references' outputs and the references'
membership, never the target's membership (``make_input`` does not hand it over). Attacks
do no I/O, no training (Shokri's classifiers are fitted inside the call) and no plotting;
they import numpy/scipy/scikit-learn only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from miaudit._registry import Registry
from miaudit.errors import MiauditError


class NotApplicable(MiauditError):
    """The attack cannot run on this pool or dataset (too few references, no population, ...)."""


@dataclass(frozen=True)
class PopSignals:
    """The same arrays for population records (never trained on by any model)."""

    target: np.ndarray  # (A, P, C) logits of the target model
    refs: np.ndarray  # (R, A, P, C) logits of the reference models
    labels: np.ndarray  # (P,)


@dataclass(frozen=True)
class AttackInput:
    """Everything an attack may use for one target model."""

    target: np.ndarray  # (A, N, C) logits of the target; A = 1 without augmented queries
    refs: np.ndarray  # (R, A, N, C) logits of the reference models, target excluded
    refs_in: np.ndarray  # (R, N) bool: the references' membership only
    labels: np.ndarray  # (N,) int
    population: PopSignals | None = None
    is_image: bool = False
    seed: int = 0  # for attacks that tune or fit anything (Shokri, RMIA's a)

    @property
    def n_records(self) -> int:
        return self.target.shape[1]

    @property
    def n_refs(self) -> int:
        return self.refs.shape[0]


def make_input(
    logits: np.ndarray,
    in_mask: np.ndarray,
    labels: np.ndarray,
    target: int,
    *,
    population_logits: np.ndarray | None = None,
    population_labels: np.ndarray | None = None,
    is_image: bool = False,
    seed: int = 0,
) -> AttackInput:
    """Split pool signals into the target's view and its references' (target's membership withheld).

    Parameters
    ----------
    logits : (M, A, N, C) float
    in_mask : (M, N) bool
    labels : (N,) int
    population_logits : (M, A, P, C) float, optional
    """
    m = logits.shape[0]
    others = np.array([i for i in range(m) if i != target], dtype=np.int64)
    pop = None
    if population_logits is not None and population_labels is not None and population_logits.shape[2] > 0:
        pop = PopSignals(
            target=np.asarray(population_logits[target]),
            refs=np.asarray(population_logits[others]),
            labels=np.asarray(population_labels),
        )
    return AttackInput(
        target=np.asarray(logits[target]),
        refs=np.asarray(logits[others]),
        refs_in=np.asarray(in_mask[others], dtype=bool),
        labels=np.asarray(labels),
        population=pop,
        is_image=is_image,
        seed=seed,
    )


class NoAttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


AttackFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class AttackSpec:
    name: str
    fn: AttackFn
    params: type[BaseModel]
    description: str
    #: attacker knowledge, for tables: "none" (population only), "offline" (OUT refs), "online" (IN+OUT refs)
    knowledge: str = "none"
    images_only: bool = False

    def __call__(self, inp: AttackInput, params: dict | None = None) -> np.ndarray:
        p = self.params.model_validate(params or {})
        scores = np.asarray(self.fn(inp, **p.model_dump()), dtype=np.float64)
        if scores.shape != (inp.n_records,):
            raise RuntimeError(f"attack {self.name!r} returned shape {scores.shape}, expected ({inp.n_records},)")
        if not np.isfinite(scores).all():
            # keep order: +inf/-inf/NaN map to the extremes of the finite range
            finite = scores[np.isfinite(scores)]
            hi = finite.max() + 1 if finite.size else 1.0
            lo = finite.min() - 1 if finite.size else -1.0
            scores = np.nan_to_num(scores, nan=lo, posinf=hi, neginf=lo)
        return scores


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register_attack(
    name: str,
    *,
    description: str,
    params: type[BaseModel] = NoAttackParams,
    knowledge: str = "none",
    images_only: bool = False,
) -> Callable[[AttackFn], AttackFn]:
    """Register ``fn(inp: AttackInput, **params) -> (N,) float64`` under ``name``."""

    def add(fn: AttackFn) -> AttackFn:
        ATTACKS.add(
            name,
            AttackSpec(
                name=name, fn=fn, params=params, description=description, knowledge=knowledge, images_only=images_only
            ),
        )
        return fn

    return add
