"""run_attacks on small fabricated signals: results layout, CI switch, saved scores, target checks;
explicit queries honoured or refused, below-chance attacks named, every key an attack writes
documented (issue 14, items 2 and 4)."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from miaudit.pipeline.attack import resolve_targets, run_attacks
from miaudit.pipeline.audit_signals import audit_signals, load_audit_config
from miaudit.errors import BelowChanceWarning, ConfigError
from miaudit.signals import Signals


@pytest.fixture
def signals(rng):
    m, n, c, p = 6, 300, 3, 100
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[:3], j] = True
    y = rng.integers(0, c, n)
    z = rng.normal(size=(m, 1, n, c)).astype(np.float32)
    z[:, 0, np.arange(n), y] += 2.0 * in_mask
    yz = rng.integers(0, c, p)
    return Signals(logits=z, in_mask=in_mask, labels=y, population_logits=rng.normal(size=(m, 1, p, c)),
                   population_labels=yz)


def test_results_layout_and_saved_scores(signals, tmp_path):
    cfg = load_audit_config(None, ["audit.attacks=[loss,rmia-offline]", "audit.bootstrap=20"], n_models=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_attacks(signals, cfg.audit, seed=0, scores_dir=tmp_path)
    r = run.results["rmia-offline"]
    assert set(r) >= {"auc", "advantage", "tpr_at_fpr", "fpr_achieved", "reliable", "ppv", "ci95", "knowledge", "per_target"}
    assert set(r["tpr_at_fpr"]) == {"0.0", "0.0001", "0.001", "0.01", "0.1"} == set(r["ci95"]["tpr_at_fpr"])
    assert r["knowledge"] == "offline" and len(r["per_target"]) == 6
    # RMIA's a, tuned per target with a reference playing the target, is reported on the grid
    assert len(r["chosen"]["a"]) == 6 and all(a in [round(0.1 * i, 1) for i in range(11)] for a in r["chosen"]["a"])
    assert r["chosen"]["a_tuned"] == [1.0] * 6 and "chosen" not in run.results["loss"]
    assert r["reliable"]["0.1"] is True and r["reliable"]["0.01"] is False  # ~150 non-members: ≥ 10/0.1, < 10/0.01
    assert np.load(tmp_path / "loss.npy").shape == (6, 300)
    assert any("10/FPR" in w for w in run.warnings)


def test_bootstrap_zero_turns_intervals_off(signals):
    cfg = load_audit_config(None, ["audit.attacks=[loss]", "audit.bootstrap=0"], n_models=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "ci95" not in run_attacks(signals, cfg.audit, seed=0).results["loss"]


def test_priors_and_targets_are_checked():
    with pytest.raises(ConfigError, match="audit.priors"):
        load_audit_config(None, ["audit.priors=[0.5, 1.0]"], n_models=4)
    assert resolve_targets(2, 4) == [0, 1]
    with pytest.raises(ConfigError, match="audit.targets"):
        resolve_targets([5], 4)
    # the pool size comes from the signals, so targets are checked against the real pool
    assert load_audit_config(None, ["audit.targets=[11]"], n_models=12).audit.targets == [11]


def test_every_attack_scores_a_target_override_like_the_pool_row(signals):
    """The memoised per-pool statistics and the override path (a defended target) agree:
    overriding the target's outputs with its own row changes no score, and shared memos do
    not leak one target's statistic into another's."""
    from miaudit.attacks import ATTACKS, NotApplicable, make_input

    logits = np.asarray(signals.logits)
    pop = np.asarray(signals.population_logits)
    kw = dict(population_logits=pop, population_labels=signals.population_labels, seed=3)
    for name in ATTACKS.names():
        spec = ATTACKS.get(name)
        for t in (0, 2):
            try:
                pooled = spec(make_input(logits, signals.in_mask, signals.labels, t, **kw))
            except NotApplicable:
                continue
            alone = spec(make_input(logits, signals.in_mask, signals.labels, t, **kw,
                                    target_logits=logits[t].copy(), target_population_logits=pop[t].copy()))
            np.testing.assert_allclose(pooled, alone, rtol=1e-12, atol=1e-12, err_msg=f"{name}, target {t}")


def test_per_record_lira_with_few_references_is_flagged(rng):
    from miaudit.config import AuditConfig
    from miaudit.pipeline.pool import membership_design

    m, n, c = 8, 200, 3
    signals = Signals(logits=rng.normal(size=(m, 1, n, c)).astype(np.float32), in_mask=membership_design(m, n, 0),
                      labels=rng.integers(0, c, n), population_logits=None, population_labels=None)

    cfg = AuditConfig(attacks=["lira-online", "lira-online-fixed"], bootstrap=0)
    with pytest.warns(UserWarning):
        run = run_attacks(signals, cfg, seed=0)
    flagged = [w for w in run.warnings if "per-record variance" in w]
    assert len(flagged) == 1 and "'lira-online'" in flagged[0] and "lira-online-fixed" in flagged[0]


DOCS = Path(__file__).resolve().parents[3] / "docs" / "results.md"


def _signals(rng, m=6, n=400, c=3, a=2, p=150, sign=1.0):
    in_mask = rng.random((m, n)).argsort(0) < m // 2
    y = rng.integers(0, c, n)
    z = rng.normal(size=(m, a, n, c)).astype(np.float32)
    z[:, :, np.arange(n), y] += sign * 2.0 * in_mask[:, None, :]
    return Signals(logits=z, in_mask=in_mask, labels=y, population_logits=rng.normal(size=(m, a, p, c)).astype(np.float32),
                   population_labels=rng.integers(0, c, p), is_image=True)


def test_audit_signals_honours_or_refuses_audit_queries(rng):
    sig = _signals(rng)
    base = ["audit.attacks=[lira-online-fixed]", "audit.bootstrap=0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = audit_signals(sig, config=load_audit_config(None, base, n_models=6))
        one = audit_signals(sig, config=load_audit_config(None, base + ["audit.queries=1"], n_models=6))
        alone = audit_signals(Signals(**{**sig.__dict__, "logits": sig.logits[:, :1],
                                         "population_logits": sig.population_logits[:, :1]}),
                              config=load_audit_config(None, base, n_models=6))
    assert two["data"]["n_queries"] == 2 and one["data"]["n_queries"] == 1
    assert one["attacks"]["lira-online-fixed"]["auc"] == alone["attacks"]["lira-online-fixed"]["auc"]
    assert one["attacks"]["lira-online-fixed"]["auc"] != two["attacks"]["lira-online-fixed"]["auc"]
    with pytest.raises(ConfigError, match="audit.queries=3: the signals hold 2 queries"):
        audit_signals(sig, config=load_audit_config(None, base + ["audit.queries=3"], n_models=6))


def test_an_attack_below_chance_is_named_in_the_warnings(rng):
    sig = _signals(rng, a=1, sign=-1.0)  # members LESS confident: a broken setup for every attack
    cfg = load_audit_config(None, ["audit.attacks=[loss,lira-online-fixed]", "audit.bootstrap=50"], n_models=6)
    with pytest.warns(BelowChanceWarning):
        run = run_attacks(sig, cfg.audit, seed=0)
    named = [w for w in run.warnings if "below chance" in w]
    assert any("'loss'" in w for w in named) and all("broken setup" in w for w in named)
    ok = run_attacks(_signals(rng, a=1), cfg.audit, seed=0)
    assert not [w for w in ok.warnings if "below chance" in w]


def test_every_key_every_attack_writes_is_documented(rng):
    """docs/results.md names every key of every attack's entry (incl. per-target and tuned values)."""
    schema = DOCS.read_text()
    cfg = load_audit_config(None, ["audit.bootstrap=20"], n_models=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_attacks(_signals(rng, a=2), cfg.audit, seed=0)
    assert "rmia-offline" in run.results and "chosen" in run.results["rmia-offline"]
    keys = set()
    for res in run.results.values():
        keys |= set(res) | set(res["per_target"][0]) | set(res.get("chosen", {}))
    undocumented = sorted(k for k in keys if not re.search(rf"`{re.escape(k)}`", schema))
    assert undocumented == []


def test_a_tie_block_over_an_fpr_range_is_said_and_never_interpolated(rng):
    """Scores with two values: 20% of non-members tie with every member. No threshold has FPR in
    (0, 20%): TPR at 1% and 10% must be the block's lower edge (0), with a warning naming it."""
    m, n, c = 6, 3000, 3
    in_mask = rng.random((m, n)).argsort(0) < 3
    y = rng.integers(0, c, n)
    z = np.zeros((m, 1, n, c), np.float32)
    z[:, 0, np.arange(n), y] = np.where(in_mask, 1.0, rng.choice([1.0, 0.0], size=(m, n), p=[0.2, 0.8]))
    cfg = load_audit_config(None, ["audit.attacks=[loss]", "audit.bootstrap=0"], n_models=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_attacks(Signals(z, in_mask, y, None, None), cfg.audit, seed=0)
    res = run.results["loss"]
    assert res["tpr_at_fpr"]["0.01"] == 0.0 and res["tpr_at_fpr"]["0.1"] == 0.0
    assert any("tied scores leave no threshold between FPR 0% and 1%" in w for w in run.warnings)
