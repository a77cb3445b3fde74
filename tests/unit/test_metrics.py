"""Property-based checks (hypothesis) of the metrics: AUC and TPR at a fixed FPR."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miaudit.metrics import attack_metrics, tpr_at_fpr

FPRS = (0.0, 0.0001, 0.001, 0.01, 0.1, 0.5)


@st.composite
def scored(draw):
    n = draw(st.integers(4, 300))
    # few distinct values on purpose: ties are where ROC code goes wrong
    scores = draw(arrays(np.float64, n, elements=st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]) | st.floats(-5, 5)))
    member = draw(arrays(np.bool_, n))
    member[0], member[1] = True, False  # both classes present
    return scores, member


@settings(max_examples=150, deadline=None)
@given(scored())
def test_auc_in_unit_interval_and_antisymmetric(sm):
    s, m = sm
    a = attack_metrics(s, m, FPRS)
    b = attack_metrics(-s, m, FPRS)
    assert 0.0 <= a.auc <= 1.0
    assert abs(a.auc + b.auc - 1.0) < 1e-9


@settings(max_examples=150, deadline=None)
@given(scored())
def test_tpr_at_fpr_is_monotone_and_advantage_bounded(sm):
    s, m = sm
    r = attack_metrics(s, m, FPRS)
    tprs = [r.tpr_at_fpr[k] for k in sorted(r.tpr_at_fpr, key=float)]
    assert all(x <= y + 1e-12 for x, y in zip(tprs, tprs[1:]))
    assert all(0.0 <= t <= 1.0 for t in tprs)
    assert 0.0 <= r.advantage <= 1.0
    # never above what an oracle that counts thresholds directly allows
    neg = s[~m]
    for alpha in (0.0, 0.1, 0.5):
        best = 0.0
        for thr in np.unique(s):
            if (neg >= thr).mean() <= alpha + 1e-12:
                best = max(best, (s[m] >= thr).mean())
        assert abs(tpr_at_fpr(s, m, alpha) - best) < 1e-12
