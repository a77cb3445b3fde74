"""Queries follow the training recipe; explicit queries are honoured or refused; below-chance
attacks are named; every key an attack writes is documented (issue 14, items 2 and 4)."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from miaudit.pipeline.attack import run_attacks
from miaudit.pipeline.audit_signals import audit_signals, load_audit_config
from miaudit.pipeline.configure import load_config
from miaudit.errors import BelowChanceWarning, ConfigError
from miaudit.signals import Signals
from miaudit.pipeline.signals import n_queries, queries_mismatch

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def test_queries_default_to_the_training_augmentation():
    plain = load_config(None, ["data.name=fashion-mnist"])
    assert n_queries(plain, is_image=True) == 1 and n_queries(plain, is_image=False) == 1
    flips = load_config(None, ["data.name=fashion-mnist", "train.recipes=[{name: augmentation}]"])
    assert n_queries(flips, is_image=True) == 2 and queries_mismatch(flips, True) is None
    no_flip = load_config(None, ["data.name=fashion-mnist", "train.recipes=[{name: augmentation, params: {hflip: false}}]"])
    assert n_queries(no_flip, is_image=True) == 1
    asked = load_config(None, ["data.name=fashion-mnist", "audit.queries=2"])
    assert n_queries(asked, is_image=True) == 2
    assert "trained without that augmentation" in queries_mismatch(asked, True)
    assert queries_mismatch(asked, False) is None  # tabular data is queried once anyway


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
