"""run_attacks on small fabricated signals: results layout, CI switch, saved scores, target checks."""

import warnings

import numpy as np
import pytest

from miaudit.audit import load_audit_config, resolve_targets, run_attacks
from miaudit.errors import ConfigError
from miaudit.signals import Signals


@pytest.fixture
def signals(rng):
    m, n, c, p = 4, 300, 3, 100
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[:2], j] = True
    y = rng.integers(0, c, n)
    z = rng.normal(size=(m, 1, n, c)).astype(np.float32)
    z[:, 0, np.arange(n), y] += 2.0 * in_mask
    yz = rng.integers(0, c, p)
    return Signals(logits=z, in_mask=in_mask, labels=y, population_logits=rng.normal(size=(m, 1, p, c)),
                   population_labels=yz)


def test_results_layout_and_saved_scores(signals, tmp_path):
    cfg = load_audit_config(None, ["audit.attacks=[loss,rmia-offline]", "audit.bootstrap=20"], n_models=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_attacks(signals, cfg.audit, seed=0, scores_dir=tmp_path)
    r = run.results["rmia-offline"]
    assert set(r) >= {"auc", "advantage", "tpr_at_fpr", "fpr_achieved", "reliable", "ppv", "ci95", "knowledge", "per_target"}
    assert set(r["tpr_at_fpr"]) == {"0.0", "0.0001", "0.001", "0.01", "0.1"} == set(r["ci95"]["tpr_at_fpr"])
    assert r["knowledge"] == "offline" and len(r["per_target"]) == 4
    assert r["reliable"]["0.1"] is True and r["reliable"]["0.01"] is False  # ~150 non-members: ≥ 10/0.1, < 10/0.01
    assert np.load(tmp_path / "loss.npy").shape == (4, 300)
    assert any("10/FPR" in w for w in run.warnings)


def test_bootstrap_zero_turns_intervals_off(signals):
    cfg = load_audit_config(None, ["audit.attacks=[loss]", "audit.bootstrap=0"], n_models=4)
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
