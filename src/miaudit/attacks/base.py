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
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict

from miaudit._registry import Registry
from miaudit.errors import MiauditError


class NotApplicable(MiauditError):
    """The attack cannot run on this pool or dataset (too few references, no population, ...)."""


def _others(n_models: int, target: int) -> np.ndarray:
    return np.array([i for i in range(n_models) if i != target], dtype=np.int64)


class _TargetView:
    """One target's view of a pool: its row, the other rows (its references), and their indices.

    Subclasses hold ``pool`` (M, A, n, C), ``target_index`` and ``target_override`` (the target's
    outputs when they differ from ``pool[target_index]``, e.g. a defended target).
    """

    pool: np.ndarray
    target_index: int
    target_override: np.ndarray | None

    @cached_property
    def others(self) -> np.ndarray:
        """Indices of the reference models in ``pool`` (every model but the target)."""
        return _others(self.pool.shape[0], self.target_index)

    @cached_property
    def target(self) -> np.ndarray:  # (A, n, C)
        if self.target_override is not None:
            return np.asarray(self.target_override)
        return np.asarray(self.pool[self.target_index])

    @cached_property
    def refs(self) -> np.ndarray:  # (R, A, n, C); a copy, built only if an attack asks for raw logits
        return np.asarray(self.pool[self.others])


@dataclass(frozen=True, eq=False)
class PopSignals(_TargetView):
    """The same arrays for population records (never trained on by any model)."""

    pool: np.ndarray  # (M, A, P, C) logits of every model on the population
    target_index: int
    labels: np.ndarray  # (P,)
    #: the target's outputs when they differ from ``pool[target_index]`` (a defended target)
    target_override: np.ndarray | None = None  # (A, P, C)
    features: np.ndarray | None = None  # (P, ...) the population records themselves (qmia)


@dataclass(frozen=True, eq=False)
class AttackInput(_TargetView):
    """Everything an attack may use for one target model.

    ``pool`` holds every model's logits; the attack sees the target's row (``target``) and the
    others' (``refs``), plus the references' membership ``refs_in`` — never the target's.
    Attacks that need a per-model statistic of every model (φ, log p_y, ...) compute it once
    per pool through ``attacks._common.split_stat`` and index it, instead of recomputing the
    references' statistic for every target.
    """

    pool: np.ndarray  # (M, A, N, C) logits of every model; A = 1 without augmented queries
    target_index: int
    refs_in: np.ndarray  # (R, N) bool: the references' membership only
    labels: np.ndarray  # (N,) int
    population: PopSignals | None = None
    is_image: bool = False
    seed: int = 0  # for attacks that tune or fit anything (Shokri, RMIA's a)
    #: the target's outputs when they differ from ``pool[target_index]``: a defended target
    #: queried by an attacker whose references are undefended (``defences.evaluate``)
    target_override: np.ndarray | None = None  # (A, N, C)
    #: the audited records themselves (N, ...), for attacks that model features (qmia); None when unknown
    features: np.ndarray | None = None

    @property
    def n_records(self) -> int:
        return self.pool.shape[2]

    @property
    def n_refs(self) -> int:
        return self.pool.shape[0] - 1


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
    target_logits: np.ndarray | None = None,
    target_population_logits: np.ndarray | None = None,
    features: np.ndarray | None = None,
    population_features: np.ndarray | None = None,
) -> AttackInput:
    """Split pool signals into the target's view and its references' (target's membership withheld).

    Parameters
    ----------
    logits : (M, A, N, C) float (may be memory-mapped; nothing is copied here). Pass the same
        array object for every target: per-model statistics are memoised by its identity.
    in_mask : (M, N) bool
    labels : (N,) int
    population_logits : (M, A, P, C) float, optional
    target_logits, target_population_logits : (A, N, C), (A, P, C), optional: the target's
        outputs when they are not ``logits[target]`` (a defended target, undefended references)
    features, population_features : (N, ...), (P, ...), optional: the records themselves, for
        attacks that model a record's features (qmia); None where only outputs are known
    """
    m = logits.shape[0]
    if not 0 <= target < m:
        raise ValueError(f"target {target} is not a model index of a pool of {m}")
    pop = None
    if population_logits is not None and population_labels is not None and population_logits.shape[2] > 0:
        pop = PopSignals(pool=population_logits, target_index=target, labels=np.asarray(population_labels),
                         target_override=target_population_logits, features=population_features)
    return AttackInput(
        pool=logits,
        target_index=target,
        refs_in=np.asarray(in_mask[_others(m, target)], dtype=bool),
        labels=np.asarray(labels),
        population=pop,
        is_image=is_image,
        seed=seed,
        target_override=target_logits,
        features=features,
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
    #: run by default in pool runs (``audit.attacks: null``); opt-in attacks are named in ``audit.attacks``
    pool_default: bool = True

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
    pool_default: bool = True,
) -> Callable[[AttackFn], AttackFn]:
    """Register ``fn(inp: AttackInput, **params) -> (N,) float64`` under ``name``."""

    def add(fn: AttackFn) -> AttackFn:
        ATTACKS.add(
            name,
            AttackSpec(
                name=name, fn=fn, params=params, description=description, knowledge=knowledge, images_only=images_only,
                pool_default=pool_default,
            ),
        )
        return fn

    return add
