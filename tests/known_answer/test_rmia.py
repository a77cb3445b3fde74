"""RMIA: the sorted count against a naive N×Z oracle, and Pr(x) against its definitions."""

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, AttackInput, NotApplicable, PopSignals, make_input
from miaudit.attacks.base import reference_sets
from miaudit.attacks.rmia import A_GRID, RmiaParams, relative_score, tune_offline_a


def naive_relative_score(rx, rz, gamma):
    """Slow oracle: the full N×Z matrix of r(x)/r(z) > γ (what the fast count must equal)."""
    return ((rx[:, None] / rz[None, :]) > gamma).mean(axis=1)


def steps(score, n_levels):
    """RMIA's count-based score without its tie-break (which adds less than half a step)."""
    return np.floor(np.asarray(score) * n_levels + 1e-9) / n_levels


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def pool(rng, m=6, n=80, p=50, c=3, a=1):
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    y = rng.integers(0, c, n)
    z = rng.normal(size=(m, a, n, c))
    z[:, :, np.arange(n), y] += 1.5 * in_mask[:, None, :]  # members more confident
    yz = rng.integers(0, c, p)
    zz = rng.normal(size=(m, a, p, c))
    return z, in_mask, y, zz, yz


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 7.3])
def test_sorted_count_equals_naive_matrix(rng, gamma):
    rx = np.exp(rng.normal(size=300))
    rz = np.exp(rng.normal(size=170))
    fast = relative_score(np.log(rx)[None], np.log(rz)[None], gamma)[0]
    assert np.allclose(fast, naive_relative_score(rx, rz, gamma), atol=1e-12)


def test_default_gamma_is_two():
    assert RmiaParams().gamma == 2.0


def test_online_score_is_the_paper_formula_with_balanced_pr_x(rng):
    z, in_mask, y, zz, yz = pool(rng)
    t = 0
    inp = make_input(z, in_mask, y, t, population_logits=zz, population_labels=yz)
    got = ATTACKS.get("rmia-online")(inp, {"gamma": 1.5})
    p = softmax(z[:, 0])[:, np.arange(len(y)), y]  # (M, N) p_y
    pz = softmax(zz[:, 0])[:, np.arange(len(yz)), yz]
    refs, refs_in, refs_out = p[1:], inp.refs_in, inp.refs_out
    pr_x = np.array([0.5 * (refs[refs_in[:, j], j].mean() + refs[refs_out[:, j], j].mean()) for j in range(len(y))])
    pr_z = pz[1:].mean(0)
    expect = naive_relative_score(p[t] / pr_x, pz[t] / pr_z, 1.5)
    assert np.allclose(steps(got, len(yz)), expect, atol=1e-12)
    # inside a step, records are ordered by r(x); between steps the order is the paper's
    rx = p[t] / pr_x
    assert (np.diff(got[np.argsort(rx, kind="stable")]) >= 0).all()
    assert (got - expect >= 0).all() and (got - expect < 0.5 / len(yz)).all()


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_offline_score_uses_linear_approximation_of_pr_x(rng, a):
    z, in_mask, y, zz, yz = pool(rng)
    inp = make_input(z, in_mask, y, 2, population_logits=zz, population_labels=yz)
    got = ATTACKS.get("rmia-offline")(inp, {"a": a})
    p = softmax(z[:, 0])[:, np.arange(len(y)), y]
    pz = softmax(zz[:, 0])[:, np.arange(len(yz)), yz]
    others = [0, 1, 3, 4, 5]
    refs, refs_out = p[others], inp.refs_out
    mean_out = np.array([refs[refs_out[:, j], j].mean() for j in range(len(y))])
    pr_x = ((1 + a) * mean_out + (1 - a)) / 2
    pr_z = ((1 + a) * pz[others].mean(0) + (1 - a)) / 2
    assert np.allclose(steps(got, len(yz)), naive_relative_score(p[2] / pr_x, pz[2] / pr_z, 2.0), atol=1e-12)


def test_augmented_queries_average_the_per_query_scores(rng):
    z, in_mask, y, zz, yz = pool(rng, a=3)
    full = ATTACKS.get("rmia-offline")(make_input(z, in_mask, y, 0, population_logits=zz, population_labels=yz), {"a": 0.5})
    per_query = [
        ATTACKS.get("rmia-offline")(
            make_input(z[:, k : k + 1], in_mask, y, 0, population_logits=zz[:, k : k + 1], population_labels=yz), {"a": 0.5}
        )
        for k in range(3)
    ]
    assert np.allclose(steps(full, 3 * len(yz)), np.mean([steps(q, len(yz)) for q in per_query], axis=0))


def test_tuned_a_is_the_auc_argmax_with_the_first_reference_as_target(rng):
    from sklearn.metrics import roc_auc_score

    z, in_mask, y, zz, yz = pool(rng, m=8, n=200)
    inp = make_input(z, in_mask, y, 0, population_logits=zz, population_labels=yz)
    a = tune_offline_a(inp, gamma=2.0, max_refs=None)
    # brute force: model 1 (the first reference) plays the target against models 2..7, whose
    # reference sets come from the same membership-blind rule (seeded as tune_offline_a seeds it)
    rng_t = np.random.default_rng(np.random.SeedSequence([0, 0xA_7E, 0]))
    rest_in, rest_out = reference_sets(inp.refs_in[1:], inp.refs_out[1:], rng_t)
    sub = AttackInput(pool=z[1:], target_index=0, refs_in=rest_in, refs_out=rest_out, labels=y,
                      population=PopSignals(pool=zz[1:], target_index=0, labels=yz))
    usable = (inp.refs_in[0] | inp.refs_out[0]) & (rest_out.sum(0) >= 1)
    # the tuning ranks by the count alone (no tie-break)
    aucs = [roc_auc_score(inp.refs_in[0][usable], steps(ATTACKS.get("rmia-offline")(sub, {"a": g}), len(yz))[usable])
            for g in A_GRID]
    assert a == A_GRID[int(np.argmax(aucs))]
    assert np.array_equal(ATTACKS.get("rmia-offline")(inp), ATTACKS.get("rmia-offline")(inp, {"a": a}))


def test_offline_rmia_ranks_members_higher_and_needs_population(rng):
    from sklearn.metrics import roc_auc_score

    z, in_mask, y, zz, yz = pool(rng, m=8, n=400)
    inp = make_input(z, in_mask, y, 0, population_logits=zz, population_labels=yz)
    for name in ("rmia-online", "rmia-offline"):
        assert roc_auc_score(in_mask[0], ATTACKS.get(name)(inp)) > 0.75, name
        with pytest.raises(NotApplicable, match="population"):
            ATTACKS.get(name)(make_input(z, in_mask, y, 0))


def test_one_reference_per_record_and_too_few_models(rng):
    z, in_mask, y, zz, yz = pool(rng, m=4)
    inp = make_input(z, in_mask, y, 0, population_logits=zz, population_labels=yz)
    one = ATTACKS.get("rmia-offline")(inp, {"max_refs": 1, "a": 0.5})
    p = softmax(z[:, 0])[:, np.arange(len(y)), y]
    first_out = np.array([p[1:][inp.refs_out[:, j], j][0] for j in range(len(y))])
    pz = softmax(zz[:, 0])[:, np.arange(len(yz)), yz]
    expect = naive_relative_score(p[0] / (0.75 * first_out + 0.25), pz[0] / (0.75 * pz[1] + 0.25), 2.0)
    assert np.allclose(steps(one, len(yz)), expect, atol=1e-12)
    # 4 models: no reference can play the target with references of its own; a = 1 is used, said
    scores, chosen = ATTACKS.get("rmia-offline").run(inp)
    assert chosen == {"a": 1.0, "a_tuned": 0.0}
    assert np.array_equal(scores, ATTACKS.get("rmia-offline")(inp, {"a": 1.0}))
    two = make_input(z[:2], in_mask[:2], y, 0, population_logits=zz[:2], population_labels=yz)
    with pytest.raises(NotApplicable):
        ATTACKS.get("rmia-offline")(two)  # records IN for the only reference have no OUT reference
