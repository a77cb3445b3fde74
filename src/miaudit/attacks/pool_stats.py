"""Per-model statistics of one pool's outputs, computed once and shared by every target and attack.

Attacks that compare a target with its references need a statistic of every model (LiRA's φ,
RMIA's log p_y, Shokri's sorted log-odds, ...). Every model plays the target in turn and the
others are its references, so each model's statistic is needed once per target: a ``PoolStats``
built once per pool (one logits array and its labels) computes each statistic on first use, for
every model, and keeps it. ``make_input`` puts it in ``AttackInput.stats`` (and the population's
in ``PopSignals.stats``); callers that build inputs for many targets pass one shared object.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miaudit.numerics import logp_y_from, phi_from, true_logit_and_rest

#: a per-model statistic: logits (A, N, C) and labels (N,) -> (A, N, ...) float64
StatFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: the built-in statistics, derived from (z_y, logsumexp_{j≠y} z_j): LiRA's φ and log p_y (−loss)
BUILTIN: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"phi": phi_from, "logp_y": logp_y_from}


class PoolStats:
    """Lazily computed, cached per-model statistics of ``logits`` (M, A, N, C) with ``labels`` (N,).

    ``population``: the same models' statistics on population records (``PopSignals.stats``), or None.

    Examples
    --------
    >>> z = np.array([[[[2.0, 0.0]]], [[[0.0, 1.0]]]])  # 2 models, 1 query, 1 record, 2 classes
    >>> stats = PoolStats(z, np.array([0]))
    >>> stats.get("phi")[:, 0, 0].tolist(), stats.cached("logp_y") is None
    ([2.0, -1.0], True)
    """

    def __init__(self, logits: np.ndarray, labels: np.ndarray, *, population: PoolStats | None = None) -> None:
        self.logits = logits  # (M, A, N, C), possibly memory-mapped: read model by model
        self.labels = np.asarray(labels)  # (N,)
        self.population = population
        self._cache: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def of(
        cls,
        logits: np.ndarray,
        labels: np.ndarray,
        population_logits: np.ndarray | None = None,
        population_labels: np.ndarray | None = None,
    ) -> PoolStats:
        """The statistics of a pool and, when both are given, of its population records."""
        pop = None
        if population_logits is not None and population_labels is not None:
            pop = cls(population_logits, population_labels)
        return cls(logits, labels, population=pop)

    def z_y_rest(self) -> tuple[np.ndarray, np.ndarray]:
        """z_y and logsumexp_{j≠y} z_j of every model, (M, A, N) float64 each."""
        hit = self._cache.get("z_y,rest")
        if hit is None:
            parts = [true_logit_and_rest(self.logits[m], self.labels) for m in range(self.logits.shape[0])]
            hit = self._cache["z_y,rest"] = (np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))
        return hit  # type: ignore[return-value]

    def get(self, name: str, fn: StatFn | None = None) -> np.ndarray:
        """Statistic ``name`` of every model, (M, A, N, ...) float64, computed on first use.

        ``name`` is "phi" or "logp_y" (from ``z_y_rest``), or any name for ``fn(logits (A, N, C),
        labels) -> (A, N, ...)`` applied to each model (one name, one function).
        """
        hit = self._cache.get(name)
        if hit is None:
            if fn is None:
                hit = BUILTIN[name](*self.z_y_rest())
            else:
                hit = np.stack([fn(self.logits[m], self.labels) for m in range(self.logits.shape[0])])
            self._cache[name] = hit
        return hit  # type: ignore[return-value]

    def cached(self, name: str) -> np.ndarray | None:
        """Statistic ``name`` when already computed, else None (nothing is computed)."""
        hit = self._cache.get(name)
        return hit if isinstance(hit, np.ndarray) else None

    def of_outputs(self, logits: np.ndarray, name: str, fn: StatFn | None = None) -> np.ndarray:
        """Statistic ``name`` of one model's outputs ``logits`` (A, N, C) alone, (A, N, ...): what ``get``
        holds for a model of the pool, computed the same way for outputs that are not in it."""
        if fn is not None:
            return fn(logits, self.labels)
        return BUILTIN[name](*true_logit_and_rest(logits, self.labels))

    def __repr__(self) -> str:
        return f"PoolStats(logits {tuple(self.logits.shape)}, computed {sorted(self._cache)})"
