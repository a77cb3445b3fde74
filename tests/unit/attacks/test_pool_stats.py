"""PoolStats: each per-model statistic of a pool computed once, shared by every target, equal to the
statistic computed on one model's outputs alone."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, AttackInput, PoolStats, make_input
from miaudit.numerics import log_softmax, scaled_logit


def _pool(rng: np.random.Generator, m: int = 6, n: int = 40, c: int = 4, p: int = 30):
    logits = rng.normal(size=(m, 2, n, c)).astype(np.float32)  # (M, A, N, C)
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    return logits, in_mask, rng.integers(0, c, n), rng.normal(size=(m, 2, p, c)).astype(np.float32), rng.integers(0, c, p)


def test_builtin_statistics_match_the_numerics_and_are_computed_once(rng):
    logits, _, labels, _, _ = _pool(rng)
    stats = PoolStats(logits, labels)
    assert stats.cached("phi") is None and stats.cached("logp_y") is None  # nothing before first use
    phi = stats.get("phi")
    assert phi.shape == (6, 2, 40) and phi.dtype == np.float64
    np.testing.assert_array_equal(phi, np.stack([scaled_logit(logits[m], labels) for m in range(6)]))
    logp = np.take_along_axis(log_softmax(logits), np.broadcast_to(labels[:, None], (6, 2, 40, 1)), -1)[..., 0]
    np.testing.assert_allclose(stats.get("logp_y"), logp, rtol=0, atol=1e-12)
    assert stats.get("phi") is phi and stats.cached("phi") is phi  # kept, not recomputed


def test_a_named_statistic_runs_its_function_once_per_model(rng):
    logits, _, labels, _, _ = _pool(rng)
    calls = []

    def top(z: np.ndarray, y: np.ndarray) -> np.ndarray:  # (A, N, C) -> (A, N)
        calls.append(z.shape)
        return z.max(axis=-1).astype(np.float64)

    stats = PoolStats(logits, labels)
    first = stats.get("top", top)
    assert len(calls) == 6 and stats.get("top", top) is first and len(calls) == 6
    np.testing.assert_array_equal(first, logits.max(axis=-1))


def test_one_shared_object_serves_every_target_and_the_target_row_comes_from_it(rng):
    logits, in_mask, labels, pop, pop_labels = _pool(rng)
    stats = PoolStats.of(logits, labels, pop, pop_labels)
    calls = []

    def mean(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        calls.append(1)
        return z.mean(axis=-1).astype(np.float64)

    for t in range(6):
        inp = make_input(logits, in_mask, labels, t, population_logits=pop, population_labels=pop_labels, stats=stats)
        assert inp.stats is stats and inp.population.stats is stats.population
        target, refs = inp.split_stat("mean", mean)
        np.testing.assert_array_equal(target, logits[t].mean(axis=-1))
        np.testing.assert_array_equal(refs, np.delete(logits, t, axis=0).mean(axis=-1))
    assert len(calls) == 6  # one call per model for the whole pool, not per target


def test_target_stat_reads_the_pool_only_without_an_override(rng):
    logits, in_mask, labels, _, _ = _pool(rng)
    stats = PoolStats(logits, labels)
    inp = make_input(logits, in_mask, labels, 1, stats=stats)
    alone = inp.target_stat("phi")  # nothing cached: the target's outputs alone, the pool untouched
    assert stats.cached("phi") is None
    np.testing.assert_array_equal(alone, scaled_logit(logits[1], labels))
    stats.get("phi")
    assert np.shares_memory(inp.target_stat("phi"), stats.cached("phi"))  # now the pool's row
    defended = logits[1] * 0.5  # a defended target: never the pool's row
    over = make_input(logits, in_mask, labels, 1, stats=stats, target_logits=defended)
    np.testing.assert_array_equal(over.target_stat("phi"), scaled_logit(defended, labels))


def test_stats_of_another_pool_or_without_population_are_refused(rng):
    logits, in_mask, labels, pop, pop_labels = _pool(rng)
    with pytest.raises(ValueError, match="another logits array"):
        make_input(logits, in_mask, labels, 0, stats=PoolStats(logits.copy(), labels))
    with pytest.raises(ValueError, match="other labels"):
        make_input(logits, in_mask, labels, 0, stats=PoolStats(logits, (labels + 1) % 4))
    with pytest.raises(ValueError, match="population"):
        make_input(logits, in_mask, labels, 0, population_logits=pop, population_labels=pop_labels,
                   stats=PoolStats(logits, labels))
    # built by hand without stats: the input makes its own
    inp = AttackInput(pool=logits, target_index=0, refs_in=in_mask[1:], labels=labels)
    assert inp.stats.logits is logits


@pytest.mark.parametrize("name", ATTACKS.names())
def test_a_shared_pool_stats_changes_no_score(name, rng):
    """Every attack scores a target the same whether the pool's statistics were computed for it alone
    or shared with (and filled by) every other target first."""
    logits, in_mask, labels, pop, pop_labels = _pool(rng, m=8, n=80, p=60)
    kw = dict(population_logits=pop, population_labels=pop_labels, is_image=True, seed=4,
              features=rng.normal(size=(80, 3)), population_features=rng.normal(size=(60, 3)))
    spec = ATTACKS.get(name)
    shared = PoolStats.of(logits, labels, pop, pop_labels)
    for t in range(8):  # every target through one object, as run_attacks does
        try:
            fresh = spec(make_input(logits, in_mask, labels, t, **kw))
        except Exception as exc:  # noqa: BLE001  the attack's own NotApplicable: nothing to compare
            pytest.skip(f"{name}: {exc}")
        np.testing.assert_array_equal(fresh, spec(make_input(logits, in_mask, labels, t, **kw, stats=shared)))
