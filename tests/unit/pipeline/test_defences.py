"""Evaluating defences on fabricated signals: three attackers, utility, no argmax change."""

from __future__ import annotations

import numpy as np

from miaudit.pipeline.configure import load_config
from miaudit.pipeline.defences import evaluate_defences
from miaudit.signals import Signals


def test_evaluation_reports_three_attackers_accuracy_and_no_argmax_change(rng):
    m, n, c = 6, 300, 4
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    labels = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (m, 1, n, c))
    logits[:, 0, np.arange(n), labels] += 1.0 + 2.0 * in_mask  # members: larger margin
    sig = Signals(logits=logits.astype(np.float32), in_mask=in_mask, labels=labels,
                  population_logits=None, population_labels=None,
                  test_logits=logits[:, :, :50].astype(np.float32), test_labels=labels[:50])
    cfg = load_config(None, ["defences=[logit-reweighting, label-only]", "audit.attacks=[loss, lira-offline-fixed]",
                             "audit.bootstrap=20", "pool.n_models=6"])
    results, timing = evaluate_defences(sig, cfg)
    for key in ("logit-reweighting", "label-only"):
        r = results[key]
        assert set(r["attackers"]) == {"non-adaptive", "adaptive", "label-only"}
        assert set(r["attackers"]["adaptive"]) == {"loss", "lira-offline-fixed"}
        assert set(r["attackers"]["label-only"]) == {"label-only-gap"}
        assert r["utility"]["before"] == r["utility"]["after"] and r["argmax_changed"] == 0.0
        assert "ci95" in r["attackers"]["adaptive"]["loss"]
        assert timing[key]["apply_us_per_query"] >= 0
    # the loss attack uses only the target: adaptive and non-adaptive agree
    lr = results["logit-reweighting"]["attackers"]
    assert lr["adaptive"]["loss"]["auc"] == lr["non-adaptive"]["loss"]["auc"]
