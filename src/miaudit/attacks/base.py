"""The one attack signature, its input record, and the attack registry.

An attack is ``fn(inp: AttackInput, **params) -> (N,) float64``: finite, higher = more
likely a member. It sees the target's outputs, the references' outputs and the references'
membership, never the target's membership (``make_input`` does not hand it over), and the
pool's per-model statistics (``AttackInput.stats``, a ``PoolStats``). Attacks do no I/O, no
training (Shokri's classifiers are fitted inside the call) and no plotting; they import
numpy/scipy/scikit-learn only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict

from miaudit._registry import Registry
from miaudit.attacks.pool_stats import PoolStats, StatFn
from miaudit.errors import MiauditError, NonFiniteScoresWarning


class NotApplicable(MiauditError):
    """The attack cannot run on this pool or dataset (too few references, no population, ...)."""


def select_refs(mask: np.ndarray, max_refs: int | None) -> np.ndarray:
    """Keep, per record (column), only the first ``max_refs`` True entries of ``mask`` (R, N); None = all."""
    mask = np.asarray(mask, dtype=bool)
    if max_refs is None:
        return mask
    return mask & (np.cumsum(mask, axis=0) <= max_refs)


def require_references(sides: Mapping[str, np.ndarray], *, per_side: int = 1, advice: str = "") -> None:
    """The one "enough references" check: every record needs ``per_side`` references in each mask.

    Parameters
    ----------
    sides : side name ("IN", "OUT") -> (R, N) bool, the references an attack uses per record
    per_side : fewest references per record on each side
    advice : appended to the message (e.g. "; use a larger pool or the fixed-variance variant")

    Raises
    ------
    NotApplicable
        "needs at least 1 IN and 1 OUT reference model per record, some records have 0": the
        message results.json reports for a skipped attack.

    Examples
    --------
    >>> require_references({"OUT": np.array([[True, False]])})
    Traceback (most recent call last):
    ...
    miaudit.attacks.base.NotApplicable: needs at least 1 OUT reference model per record, some records have 0
    """
    counts = [np.asarray(m, dtype=bool).sum(axis=0) for m in sides.values()]  # (N,) per side
    no_refs = any(np.asarray(m).shape[0] == 0 for m in sides.values())
    if no_refs or any((c < per_side).any() for c in counts):
        low = min(int(c.min()) if c.size else 0 for c in counts)
        need = " and ".join(f"{per_side} {side}" for side in sides)
        raise NotApplicable(
            f"needs at least {need} reference model{'s' if per_side > 1 else ''} per record, some records have {low}{advice}"
        )


def _others(n_models: int, target: int) -> np.ndarray:
    return np.array([i for i in range(n_models) if i != target], dtype=np.int64)


def reference_sets(
    refs_in: np.ndarray, refs_out: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The references' IN and OUT sets of every record, equal in size: blind to the target's membership.

    The one place every attack's reference sets come from (``make_input``; RMIA's pseudo-target).
    In the balanced pool (every record IN for M/2 of M models) the references hold M/2 − 1 IN
    and M/2 OUT models when the target holds the record, and the reverse when it does not: the
    *counts* would tell the target's membership (on a null pool, per-record LiRA scored AUC
    0.30 instead of 0.5). So each record keeps k = min(#IN, #OUT) references per side, the
    larger side cut to a uniformly random k of its models. Only the references' rows are read,
    never the target's. With the balanced design this leaves M/2 − 1 per side, and the pair
    (IN set, OUT set) is a uniformly random disjoint pair of that size whichever the target's
    membership (the design is a random permutation per record), so even references that differ
    in calibration cannot leak it. With independent inclusion (Bernoulli(½) per model and
    record) the references' counts are independent of the target's membership already. A record
    with no reference on one side keeps the other whole (offline references, which never trained
    on the audited records; in a balanced pool of M ≥ 4 both sides are never empty).

    Parameters
    ----------
    refs_in, refs_out : (R, N) bool, disjoint: reference r holds record n, or provably not; a
        reference in neither is not used for that record
    rng : the draw of the references kept on the larger side (seeded by the caller)

    Returns
    -------
    refs_in, refs_out : (R, N) bool, subsets of the inputs with equal counts per record
    """
    r_in, r_out = np.array(refs_in, dtype=bool), np.array(refs_out, dtype=bool)
    n_in, n_out = r_in.sum(axis=0), r_out.sum(axis=0)  # (N,)
    # a record with no reference on one side keeps the other side whole: references that never
    # hold the audited records (offline references of an external target) say nothing of its membership
    k = np.where((n_in == 0) | (n_out == 0), np.maximum(n_in, n_out), np.minimum(n_in, n_out))
    keys = rng.random(r_in.shape)  # (R, N): a random order of the references per record
    for side in (r_in, r_out):
        # rank of each member of the side in the random order; keep the first k per record
        rank = np.where(side, keys, np.inf).argsort(axis=0).argsort(axis=0)
        side &= rank < k[None, :]
    return r_in, r_out


def reference_rng(seed: int, target: int) -> np.random.Generator:
    """The seeded stream of ``reference_sets`` for one target (same run seed ⇒ same reference sets)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x2EF5, target]))


class _TargetView:
    """One target's view of a pool: its row, the other rows (its references), and their indices.

    Subclasses hold ``pool`` (M, A, n, C), ``labels`` (n,), ``target_index``, ``target_override``
    (the target's outputs when they differ from ``pool[target_index]``, e.g. a defended target)
    and ``stats``, the pool's ``PoolStats`` (built here when not given).
    """

    pool: np.ndarray
    labels: np.ndarray
    target_index: int
    target_override: np.ndarray | None
    stats: PoolStats

    def _attach_stats(self) -> None:
        if self.stats is None:
            object.__setattr__(self, "stats", PoolStats(self.pool, self.labels))
        elif self.stats.logits is not self.pool:
            raise ValueError("stats: a PoolStats of another logits array (build one per pool, from the same array)")
        elif self.stats.labels is not self.labels and not np.array_equal(self.stats.labels, self.labels):
            raise ValueError("stats: a PoolStats of other labels")

    def split_stat(self, name: str, fn: StatFn | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(target (A, n, ...), references (R, A, n, ...)) of a per-model statistic (``PoolStats.get``):
        the references' rows of the pool's statistic, computed once per pool."""
        refs = self.stats.get(name, fn)[self.others]
        return self.target_stat(name, fn), refs  # the target's row from the statistic just computed

    def target_stat(self, name: str, fn: StatFn | None = None) -> np.ndarray:
        """The target's statistic (A, n, ...): the pool's row when another attack computed it, else on
        the target's outputs alone (an attack that needs only the target pays 1/M of the work)."""
        if self.target_override is None:
            full = self.stats.cached(name)
            if full is not None:
                return full[self.target_index]
        return self.stats.of_outputs(self.target, name, fn)

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
    #: the pool's statistics on the population (``PoolStats`` of ``pool``); built when None
    stats: PoolStats = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._attach_stats()


@dataclass(frozen=True, eq=False)
class AttackInput(_TargetView):
    """Everything an attack may use for one target model.

    ``pool`` holds every model's logits; the attack sees the target's row (``target``) and the
    others' (``refs``), plus the references' membership per record as two disjoint masks
    ``refs_in`` / ``refs_out`` chosen by ``reference_sets`` — never the target's membership, and
    never reference sets whose sizes or composition depend on it. A reference in neither mask
    for a record must not be used for that record.
    Attacks that need a per-model statistic of every model (φ, log p_y, ...) read it from
    ``stats`` (``split_stat``, ``target_stat``): computed once per pool and shared by every
    target, instead of recomputing the references' statistic for each.
    """

    pool: np.ndarray  # (M, A, N, C) logits of every model; A = 1 without augmented queries
    target_index: int
    refs_in: np.ndarray  # (R, N) bool: references used as IN for each record (``reference_sets``)
    labels: np.ndarray  # (N,) int
    population: PopSignals | None = None
    is_image: bool = False
    seed: int = 0  # for attacks that tune or fit anything (Shokri, RMIA's a)
    #: the target's outputs when they differ from ``pool[target_index]``: a defended target
    #: queried by an attacker whose references are undefended (``pipeline.defences``)
    target_override: np.ndarray | None = None  # (A, N, C)
    #: (R, N) bool: references used as OUT for each record; disjoint from ``refs_in``. None
    #: (only when built by hand) = every reference not in ``refs_in``
    refs_out: np.ndarray | None = None
    #: the audited records themselves (N, ...), for attacks that model features (qmia); None when unknown
    features: np.ndarray | None = None
    #: per-model statistics of ``pool`` (``PoolStats``), shared by every target of the pool; built when None
    stats: PoolStats = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.refs_out is None:
            object.__setattr__(self, "refs_out", ~np.asarray(self.refs_in, dtype=bool))
        self._attach_stats()

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
    stats: PoolStats | None = None,
) -> AttackInput:
    """Split pool signals into the target's view and its references' (target's membership withheld).

    Parameters
    ----------
    logits : (M, A, N, C) float (may be memory-mapped; nothing is copied here)
    in_mask : (M, N) bool; the references' sets come from ``reference_sets`` (equal IN and OUT
        counts per record, so their composition does not depend on the target's membership)
    labels : (N,) int
    population_logits : (M, A, P, C) float, optional
    target_logits, target_population_logits : (A, N, C), (A, P, C), optional: the target's
        outputs when they are not ``logits[target]`` (a defended target, undefended references)
    features, population_features : (N, ...), (P, ...), optional: the records themselves, for
        attacks that model a record's features (qmia); None where only outputs are known
    stats : the pool's statistics, ``PoolStats.of(logits, labels, population_logits,
        population_labels)`` of these very arrays: pass one shared object for every target of a
        pool, so each model's statistics are computed once. None = a new one (for one target).
    """
    m = logits.shape[0]
    if not 0 <= target < m:
        raise ValueError(f"target {target} is not a model index of a pool of {m}")
    raw = np.asarray(in_mask, dtype=bool)[_others(m, target)]  # the references' rows only
    refs_in, refs_out = reference_sets(raw, ~raw, reference_rng(seed, target))
    if stats is None:
        stats = PoolStats.of(logits, labels, population_logits, population_labels)
    pop = None
    if population_logits is not None and population_labels is not None and population_logits.shape[2] > 0:
        if stats.population is None:
            raise ValueError("stats: no population statistics, but population_logits were given")
        pop = PopSignals(pool=population_logits, target_index=target, labels=np.asarray(population_labels),
                         target_override=target_population_logits, features=population_features,
                         stats=stats.population)
    return AttackInput(
        pool=logits,
        target_index=target,
        refs_in=refs_in,
        labels=np.asarray(labels),
        population=pop,
        is_image=is_image,
        seed=seed,
        target_override=target_logits,
        refs_out=refs_out,
        features=features,
        stats=stats,
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
        return self.run(inp, params)[0]

    def run(self, inp: AttackInput, params: dict | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Scores (N,) and the values the attack chose for this target (e.g. RMIA's tuned ``a``; often empty).

        ``fn`` returns the scores, or ``(scores, chosen)`` when it tunes anything on the references.
        """
        p = self.params.model_validate(params or {})
        out = self.fn(inp, **p.model_dump())
        chosen: dict[str, float] = {}
        if isinstance(out, tuple):
            out, chosen = out
        scores = np.asarray(out, dtype=np.float64)
        if scores.shape != (inp.n_records,):
            raise RuntimeError(f"attack {self.name!r} returned shape {scores.shape}, expected ({inp.n_records},)")
        if not np.isfinite(scores).all():
            # a bug in the attack (or its inputs): said by name, then, so that the run goes on, kept in
            # order: +inf/-inf/NaN map to the extremes of the finite range
            bad = int((~np.isfinite(scores)).sum())
            warnings.warn(NonFiniteScoresWarning(self.name, bad, scores.size, f"target {inp.target_index}"), stacklevel=2)
            finite = scores[np.isfinite(scores)]
            hi = finite.max() + 1 if finite.size else 1.0
            lo = finite.min() - 1 if finite.size else -1.0
            scores = np.nan_to_num(scores, nan=lo, posinf=hi, neginf=lo)
        return scores, dict(chosen)


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
