"""attacks.base: the one reference-count check, and NaN/inf scores said by name (never silently fixed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, make_input
from miaudit.attacks.base import AttackSpec, NoAttackParams, NotApplicable, register_attack, require_references, select_refs
from miaudit.errors import NonFiniteScoresWarning


def test_require_references_counts_each_side_per_record():
    ok = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], bool)  # 2 references for every record
    require_references({"IN": ok, "OUT": ok}, per_side=2)
    with pytest.raises(NotApplicable) as exc:
        require_references({"IN": ok, "OUT": ok * np.array([True, False, True])})  # record 1: no OUT
    # the message results.json shows for a skipped attack (skipped_attacks), unchanged by the redesign
    assert str(exc.value) == "needs at least 1 IN and 1 OUT reference model per record, some records have 0"
    with pytest.raises(NotApplicable, match=r"^needs at least 3 OUT reference models per record, some records have 2; more$"):
        require_references({"OUT": ok}, per_side=3, advice="; more")
    with pytest.raises(NotApplicable, match="some records have 0"):  # no reference model at all
        require_references({"OUT": np.zeros((0, 3), bool)})


def test_select_refs_keeps_the_first_k_per_record():
    mask = np.array([[1, 1], [0, 1], [1, 1], [1, 0]], bool)
    assert select_refs(mask, 2).tolist() == [[True, True], [False, True], [True, False], [False, False]]
    assert select_refs(mask, None) is not None and select_refs(mask, None).tolist() == mask.tolist()


def _pool(rng, m=4, n=30, c=3):
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    return rng.normal(size=(m, 1, n, c)), in_mask, rng.integers(0, c, n)


def _broken(inp, **_):  # noqa: ANN001, ANN003, ANN202
    """Returns NaN for the first record, +inf for the second: a bug an honest run must report."""
    s = np.arange(inp.n_records, dtype=np.float64)
    s[0], s[1] = np.nan, np.inf
    return s


def test_non_finite_scores_warn_by_name_and_keep_the_finite_order(rng):
    logits, in_mask, labels = _pool(rng)
    spec = AttackSpec(name="broken", fn=_broken, params=NoAttackParams, description="returns NaN and inf")
    with pytest.warns(NonFiniteScoresWarning) as rec:
        scores, _ = spec.run(make_input(logits, in_mask, labels, 2))
    w = rec[0].message
    assert (w.attack, w.count, w.total, w.where) == ("broken", 2, 30, "target 2")
    assert "'broken'" in str(w) and "2 of 30" in str(w)
    # the run goes on: NaN below every finite score, +inf above
    assert np.isfinite(scores).all() and scores[0] < scores[2:].min() and scores[1] > scores[2:].max()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteScoresWarning)  # as in the test suite: an error
        with pytest.raises(NonFiniteScoresWarning, match="broken"):
            spec.run(make_input(logits, in_mask, labels, 0))
    finite = AttackSpec(name="fine", fn=lambda inp: np.zeros(inp.n_records), params=NoAttackParams, description="zeros")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteScoresWarning)
        assert (finite(make_input(logits, in_mask, labels, 0)) == 0).all()  # finite scores: no warning


@pytest.fixture
def broken_attack():
    register_attack("broken-for-test", description="returns NaN and inf (a test of the warning)")(_broken)
    yield "broken-for-test"
    ATTACKS.remove("broken-for-test")


def test_a_run_records_non_finite_scores_in_its_warnings(broken_attack, rng):
    from miaudit.pipeline.attack import run_attacks
    from miaudit.config import AuditConfig
    from miaudit.signals import Signals

    logits, in_mask, labels = _pool(rng, m=4)
    signals = Signals(logits=logits.astype(np.float32), in_mask=in_mask, labels=labels,
                      population_logits=None, population_labels=None)
    cfg = AuditConfig(attacks=[broken_attack, "loss"], bootstrap=0)
    with pytest.warns(NonFiniteScoresWarning, match="broken-for-test") as rec:
        run = run_attacks(signals, cfg, seed=0)
    assert [r.category for r in rec].count(NonFiniteScoresWarning) == 1  # one for the attack, not one per target
    assert sum(broken_attack in m and "not finite" in m for m in run.warnings) == 1
    [msg] = [m for m in run.warnings if "not finite" in m]
    assert "8 of 120 scores" in msg and "4 of 4 targets" in msg
    assert broken_attack in run.results and "loss" in run.results  # the run went on
    assert not any("'loss'" in m and "not finite" in m for m in run.warnings)
