"""QMIA (quantile regression on population records) on fabricated data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.attacks.qmia import QmiaParams, qmia_scores
from miaudit.metrics import attack_metrics


def _data(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Records whose non-member score depends strongly on a feature; members score ``shift`` higher."""
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.integers(0, 3, n)
    member = rng.random(n) < 0.5
    base = 3.0 * x[:, 0] + y  # the per-record difficulty a global threshold cannot see
    score = base + rng.normal(scale=0.3, size=n) + shift * member
    return x, y, score, member


def _params(**changed: float) -> dict:
    """The attack's options: its params model's defaults (their one home), with ``changed`` applied."""
    return {**QmiaParams().model_dump(), **changed}


def test_beats_a_global_threshold_when_difficulty_varies() -> None:
    rng = np.random.default_rng(0)
    xp, yp, sp, _ = _data(rng, 2000, 0.0)  # population: non-members only
    x, y, s, member = _data(rng, 1000, 1.0)
    margin = qmia_scores(s, x, y, sp, xp, yp, **_params(), seed=0)
    auc_q = attack_metrics(margin, member, (0.01,)).auc
    auc_global = attack_metrics(s, member, (0.01,)).auc
    assert auc_q > 0.9 and auc_q > auc_global + 0.2, (auc_q, auc_global)


def test_null_case_is_chance() -> None:
    rng = np.random.default_rng(1)
    xp, yp, sp, _ = _data(rng, 2000, 0.0)
    x, y, s, member = _data(rng, 4000, 0.0)  # scores independent of membership
    auc = attack_metrics(qmia_scores(s, x, y, sp, xp, yp, **_params(), seed=0), member, (0.01,)).auc
    assert abs(auc - 0.5) < 0.03, auc


def test_predicted_quantile_is_calibrated_on_fresh_non_members() -> None:
    rng = np.random.default_rng(2)
    xp, yp, sp, _ = _data(rng, 3000, 0.0)
    x, y, s, _ = _data(rng, 3000, 0.0)
    above = (qmia_scores(s, x, y, sp, xp, yp, **_params(quantile=0.9), seed=0) > 0).mean()
    assert 0.05 < above < 0.16, above  # about 1 - 0.9 of non-members exceed their predicted 90% quantile


def test_registered_attack_reads_the_target_and_population() -> None:
    rng = np.random.default_rng(3)
    n, p, c = 400, 300, 3
    labels, pop_labels = rng.integers(0, c, n), rng.integers(0, c, p)
    member = rng.random(n) < 0.5
    logits = rng.normal(size=(1, 1, n, c))
    logits[0, 0, np.arange(n), labels] += 3.0 * member  # members: confident on their label
    pop = rng.normal(size=(1, 1, p, c))
    feats, pop_feats = rng.normal(size=(n, 4)), rng.normal(size=(p, 4))
    inp = make_input(logits, member[None], labels, 0, population_logits=pop, population_labels=pop_labels,
                     features=feats, population_features=pop_feats)
    scores = ATTACKS.get("qmia")(inp)
    assert scores.shape == (n,) and attack_metrics(scores, member, (0.01,)).auc > 0.9
    # without the records' features (a signals file), the attack is skipped, not guessed
    with pytest.raises(NotApplicable, match="features"):
        ATTACKS.get("qmia")(make_input(logits, member[None], labels, 0, population_logits=pop,
                                       population_labels=pop_labels))
