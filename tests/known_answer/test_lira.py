"""LiRA against the closed form, on references drawn from known Gaussians."""

import numpy as np
import pytest
from scipy.stats import norm

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.numerics import scaled_logit


def logits_for_phi(phi: np.ndarray) -> np.ndarray:
    """Two-class logits whose scaled logit for label 0 is exactly phi: z = (phi, 0)."""
    return np.stack([phi, np.zeros_like(phi)], axis=-1)


def test_scaled_logit_matches_log_odds_and_stays_finite():
    z = np.array([[3.0, 1.0, -2.0], [60.0, 0.0, 0.0], [0.0, 0.0, 80.0]])
    y = np.array([0, 0, 0])
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    phi = scaled_logit(z, y)
    assert phi[0] == pytest.approx(np.log(p[0, 0]) - np.log1p(-p[0, 0]))
    assert phi[1] == pytest.approx(60.0 - np.log(2.0))  # finite at a margin of 60
    assert phi[2] == pytest.approx(-80.0, abs=1e-9)
    assert np.isfinite(phi).all()


def build_pool(rng, n=400, m=16, mu_in=2.0, mu_out=-1.0, sd=1.0):
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    phi = np.where(in_mask, rng.normal(mu_in, sd, (m, n)), rng.normal(mu_out, sd, (m, n)))
    logits = logits_for_phi(phi)[:, None]  # (M, 1, N, 2)
    labels = np.zeros(n, dtype=np.int64)
    return logits, in_mask, labels, phi


def test_lira_online_equals_closed_form(rng):
    logits, in_mask, labels, phi = build_pool(rng)
    inp = make_input(logits, in_mask, labels, target=0)
    score = ATTACKS.get("lira-online")(inp)
    refs, refs_in, refs_out = phi[1:], inp.refs_in, inp.refs_out
    for j in [0, 7, 99]:
        a, b = refs[refs_in[:, j], j], refs[refs_out[:, j], j]
        expect = norm.logpdf(phi[0, j], a.mean(), a.std(ddof=1)) - norm.logpdf(phi[0, j], b.mean(), b.std(ddof=1))
        assert score[j] == pytest.approx(expect, rel=1e-9)


def test_lira_fixed_variance_uses_pooled_residual_sd(rng):
    logits, in_mask, labels, phi = build_pool(rng)
    inp = make_input(logits, in_mask, labels, target=0)
    refs, refs_in, refs_out = phi[1:], inp.refs_in, inp.refs_out
    res_in = np.concatenate([refs[refs_in[:, j], j] - refs[refs_in[:, j], j].mean() for j in range(phi.shape[1])])
    res_out = np.concatenate([refs[refs_out[:, j], j] - refs[refs_out[:, j], j].mean() for j in range(phi.shape[1])])
    dof_in = sum(refs_in[:, j].sum() - 1 for j in range(phi.shape[1]))
    dof_out = sum((refs_out[:, j]).sum() - 1 for j in range(phi.shape[1]))
    sd_in, sd_out = np.sqrt((res_in**2).sum() / dof_in), np.sqrt((res_out**2).sum() / dof_out)
    assert sd_in == pytest.approx(1.0, abs=0.05)  # pinned: the generating sigma, not the spread of raw values
    j = 5
    mu_in, mu_out = refs[refs_in[:, j], j].mean(), refs[refs_out[:, j], j].mean()
    on = ATTACKS.get("lira-online-fixed")(inp)
    off = ATTACKS.get("lira-offline-fixed")(inp)
    assert on[j] == pytest.approx(norm.logpdf(phi[0, j], mu_in, sd_in) - norm.logpdf(phi[0, j], mu_out, sd_out))
    assert off[j] == pytest.approx(norm.logcdf((phi[0, j] - mu_out) / sd_out) - norm.logsf((phi[0, j] - mu_out) / sd_out))


def test_lira_ranks_members_above_nonmembers(rng):
    logits, in_mask, labels, _ = build_pool(rng)
    for name in ("lira-online", "lira-offline", "lira-online-fixed", "lira-offline-fixed"):
        s = ATTACKS.get(name)(make_input(logits, in_mask, labels, target=0))
        assert s[in_mask[0]].mean() > s[~in_mask[0]].mean() + 0.5, name
        # AUC against the target's true membership is high for separated Gaussians
        from sklearn.metrics import roc_auc_score

        assert roc_auc_score(in_mask[0], s) > 0.9, name


def test_augmented_queries_are_averaged(rng):
    logits, in_mask, labels, phi = build_pool(rng, n=50, m=8)
    two = np.concatenate([logits, logits + np.array([0.5, 0.0])], axis=1)  # (M, 2, N, 2): second query shifts phi by .5
    s2 = ATTACKS.get("lira-online-fixed")(make_input(two, in_mask, labels, target=0))
    s_a = ATTACKS.get("lira-online-fixed")(make_input(logits, in_mask, labels, target=0))
    s_b = ATTACKS.get("lira-online-fixed")(make_input(logits + np.array([0.5, 0.0]), in_mask, labels, target=0))
    assert np.allclose(s2, (s_a + s_b) / 2)


def test_target_membership_is_never_handed_to_the_attack(rng):
    logits, in_mask, labels, _ = build_pool(rng, n=20, m=4)
    inp = make_input(logits, in_mask, labels, target=2)
    assert inp.refs.shape[0] == 3 and inp.refs_in.shape == (3, 20)
    raw = in_mask[[0, 1, 3]]
    # the reference sets: subsets of the true IN/OUT rows with M/2 − 1 per side; the one
    # reference set aside per record is always from the larger side, the one opposite the target's
    assert not (inp.refs_in & ~raw).any() and not (inp.refs_out & raw).any()
    assert not (inp.refs_in & inp.refs_out).any()
    aside = ~(inp.refs_in | inp.refs_out)
    assert (aside.sum(0) == 1).all()
    assert np.array_equal(raw[aside.argmax(0), np.arange(20)], ~in_mask[2])
    assert (inp.refs_in.sum(0) == 1).all() and (inp.refs_out.sum(0) == 1).all()


def test_per_record_variance_needs_two_references_per_side(rng):
    logits, in_mask, labels, _ = build_pool(rng, n=20, m=4)
    with pytest.raises(NotApplicable, match="fixed-variance"):
        ATTACKS.get("lira-online")(make_input(logits, in_mask, labels, target=0))


def test_offline_score_has_no_ties_where_the_cdf_rounds_to_one(rng):
    """Records far above their OUT Gaussian (x = 40, 60, 80 σ) keep their order: log Pr[Z ≤ φ]
    rounds to 0 there and would tie them all at the low-FPR end."""
    logits, in_mask, labels, phi = build_pool(rng, n=50, m=8, sd=0.01)
    far = logits.copy()
    far[0, 0, :3, 0] += np.array([0.4, 0.6, 0.8])  # 40, 60, 80 pooled σ above the OUT mean
    s = ATTACKS.get("lira-offline-fixed")(make_input(far, in_mask, labels, target=0))
    assert len(np.unique(s[:3])) == 3
