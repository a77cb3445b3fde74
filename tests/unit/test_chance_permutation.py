"""The permutation chance control of the vulnerable set (vulnerability.scores, analyze.chance_null_counts).

Known answers on tiny fabricated pools, and the null case that broke the binomial control: on a pool
whose outputs ignore membership, LiRA online's IN flags correlate across targets (its references are
the other pool models), so the binomial control called ~6 chance records "distinguishable".
"""

import numpy as np
import pytest

from miaudit.pipeline.attack import run_attacks
from miaudit.config import load_config
from miaudit.pipeline.pool import membership_design
from miaudit.signals import Signals
from miaudit.vulnerability import analyze
from miaudit.vulnerability.analyze import chance_null_counts
from miaudit.vulnerability.scores import chance_control, permutation_control, permuted_memberships, record_vulnerability


def test_permutation_p_value_mean_and_fdr_by_hand():
    r = permutation_control(5, np.array([5, 2, 7, 1, 0]))
    # #{null >= 5} = 2 (ties count against the set): p = (1 + 2) / (1 + 5)
    assert r["p_value"] == pytest.approx(0.5)
    assert r["chance_expected"] == pytest.approx(3.0) and r["fdr_estimate"] == pytest.approx(0.6)
    assert r["chance_sd"] == pytest.approx(np.std([5, 2, 7, 1, 0], ddof=1)) and r["null_max"] == 7
    assert permutation_control(8, np.array([5, 2, 7, 1, 0]))["p_value"] == pytest.approx(1 / 6)  # the floor 1/(1+R)
    assert permutation_control(0, np.array([0, 0]))["fdr_estimate"] is None
    with pytest.raises(ValueError):
        permutation_control(3, np.array([], dtype=int))


def test_permuted_designs_keep_each_records_in_count_and_follow_the_seed():
    design = membership_design(8, 500, 0)
    design[:, :5] = np.arange(8)[:, None] < 2  # some records IN 2 of 8 models, not 4
    a = list(permuted_memberships(design, 3, seed=11))
    assert all((d.sum(0) == design.sum(0)).all() for d in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, permuted_memberships(design, 3, seed=11)))
    assert np.array_equal(a[0], next(permuted_memberships(design, 1, seed=11)))  # design r does not depend on n
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], design)
    assert not np.array_equal(a[0], next(permuted_memberships(design, 1, seed=12)))
    # a uniform shuffle per record: each model IN for about half of the (balanced) records
    per_model = np.stack(a)[:, :, 5:].mean(2)
    assert np.abs(per_model - 0.5).max() < 0.1


def _signals(logits: np.ndarray, in_mask: np.ndarray, labels: np.ndarray) -> Signals:
    # logits: (M, N, C) -> (M, 1, N, C), one query
    return Signals(logits=logits[:, None], in_mask=in_mask, labels=labels, population_logits=None,
                   population_labels=None)


def test_records_that_score_high_whether_or_not_trained_on_are_chance():
    """Known answer: 3 records have a low loss in every model, the others all tie. The loss attack
    flags exactly those 3 in every target (at most 3 of a target's ~200 non-members outrank the
    tie, and q = 4), under the real design and under any other: every null count is 3, so p = 1 and
    FDR = 100%; the binomial control alone calls them far beyond chance."""
    m, n, c, k, alpha, cut, r = 4, 400, 3, 3, 0.02, 1.0, 6
    in_mask = membership_design(m, n, 0)
    labels = np.zeros(n, dtype=np.int64)
    logits = np.zeros((m, n, c))
    logits[:, :k, 0] = 9.0  # (M, k): confident and right in every model, trained on or not
    sig = _signals(logits, in_mask, labels)
    targets = list(range(m))
    cfg = load_config(None, [f"pool.n_models={m}", "audit.attacks=[loss]", "audit.bootstrap=0"])
    scores = run_attacks(sig, cfg.audit, seed=cfg.seed).scores["loss"]  # (T, N)
    rv = record_vulnerability(scores, in_mask, alpha, cut)
    assert rv.vulnerable.sum() == k and rv.vulnerable[:k].all()
    null = chance_null_counts(sig, targets, "loss", None, seed=cfg.seed, alphas=[alpha], cut=cut, n_designs=r)[alpha]
    assert null.tolist() == [k] * r
    c_perm = chance_control(rv, null_counts=null)
    assert c_perm["chance_method"] == "permutation" and c_perm["p_value"] == 1.0 and c_perm["fdr_estimate"] == 1.0
    assert not c_perm["distinguishable_from_chance"] and "NOT distinguishable" in c_perm["statement"]
    # the binomial figures, reported beside it, would have called it: 400 x P(flagged in both IN targets) = 0.16
    assert c_perm["p_value_binomial"] < 0.01 and c_perm["chance_expected_binomial"] == pytest.approx(n * alpha**2)
    # without permutations the OUT control (they are false alarms in every OUT target) still refuses it
    c_off = chance_control(rv)
    assert c_off["chance_method"] == "binomial" and c_off["out_control_count"] == k
    assert not c_off["distinguishable_from_chance"]


def test_the_real_design_through_the_same_path_reproduces_the_observed_set(monkeypatch, rng):
    """chance_null_counts re-runs the attack as audit.run_attacks does (seed, parameters, targets): fed
    the real design instead of random ones, it must find exactly the observed set size."""
    m, n, c = 8, 300, 4
    in_mask = membership_design(m, n, 1)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, c))
    logits[:, :20][np.broadcast_to(in_mask[:, :20, None], (m, 20, c)) & (np.arange(c) == labels[:20, None])] += 3.0
    sig = _signals(logits, in_mask, labels)
    cfg = load_config(None, [f"pool.n_models={m}", "audit.attacks=[lira-online-fixed]", "audit.bootstrap=0",
                             "audit.targets=[1,3,4,6]"])
    run = run_attacks(sig, cfg.audit, seed=cfg.seed)
    observed = {a: int(record_vulnerability(run.scores["lira-online-fixed"], in_mask[run.targets], a).vulnerable.sum())
                for a in (0.01, 0.1)}
    assert observed[0.1] > 0
    monkeypatch.setattr(analyze, "permuted_memberships", lambda mask, n_designs, seed: iter([np.asarray(mask)] * n_designs))
    null = chance_null_counts(sig, run.targets, "lira-online-fixed", None, seed=cfg.seed, alphas=[0.01, 0.1], cut=0.5,
                              n_designs=2)
    assert {a: v.tolist() for a, v in null.items()} == {a: [o, o] for a, o in observed.items()}


@pytest.mark.parametrize("seed", range(8))
def test_lira_online_on_a_null_pool_is_not_distinguishable_from_chance(seed):
    """Logits independent of membership: the binomial control is fooled by LiRA online (a chance
    count of 0.36 against the several records it finds); the permutation control is not."""
    m, n, p, c, r = 8, 600, 300, 5, 20
    rng = np.random.default_rng(seed)
    in_mask = membership_design(m, n, seed)
    labels = rng.integers(0, c, n)
    sig = Signals(logits=rng.normal(size=(m, 1, n, c)), in_mask=in_mask, labels=labels,
                  population_logits=rng.normal(size=(m, 1, p, c)), population_labels=rng.integers(0, c, p))
    cfg = load_config(None, [f"pool.n_models={m}", "audit.attacks=[lira-online-fixed]", "audit.bootstrap=0"])
    run = run_attacks(sig, cfg.audit, seed=cfg.seed)
    rv = record_vulnerability(run.scores["lira-online-fixed"], in_mask[run.targets], 0.01)
    null = chance_null_counts(sig, run.targets, "lira-online-fixed", None, seed=cfg.seed, alphas=[0.01], cut=0.5,
                              n_designs=r)[0.01]
    ctl = chance_control(rv, null_counts=null)
    assert not ctl["distinguishable_from_chance"] and ctl["p_value"] > 0.05
    # the correlated flags are real: the permutation null sits far above the binomial expectation
    assert ctl["chance_expected"] > 3 * ctl["chance_expected_binomial"]


def test_too_few_designs_to_reach_p_005_is_a_config_error():
    from miaudit.errors import ConfigError

    assert load_config(None, ["analysis.chance_permutations=0"]).analysis.chance_permutations == 0
    assert load_config(None, ["analysis.chance_permutations=19"]).analysis.chance_permutations == 19
    with pytest.raises(ConfigError, match="at least 19"):
        load_config(None, ["analysis.chance_permutations=5"])
