"""'Outliers leak' as excess over what outliers get flagged for anyway (issue 14, item 3).

Null case: scores depend on a record's atypicality but not on its membership. Atypical records
are then flagged as often when OUT as when IN: the plain TPR rises across bins and the
vulnerable set looks atypical, but the excess (TPR − FPR) stays 0 in every bin and the
excess-vulnerable set is not more atypical than the rest. Signal case: membership adds to the
score of atypical records only; the excess must show it.
"""

import numpy as np

from miaudit.pipeline.pool import membership_design
from miaudit.vulnerability.analyze import excess_summary, measure_statistics
from miaudit.vulnerability.scores import record_vulnerability
from miaudit.vulnerability.stats import decile_table, excess_sets, mann_whitney

T, N = 8, 6000


def _scores(rng, leak: float):
    member = membership_design(T, N, 3)
    atypical = rng.exponential(1.0, N)  # the outlier measure
    scores = 1.5 * atypical[None, :] + rng.normal(size=(T, N)) + leak * member * (atypical[None, :] > 2.0)
    return scores, member, atypical


def test_null_pool_shows_no_excess_in_any_bin_although_tpr_rises(rng):
    scores, member, atypical = _scores(rng, leak=0.0)
    rv = record_vulnerability(scores, member, 0.01)
    table = decile_table(atypical, rv.flags, member, rng=np.random.default_rng(1))
    assert table[-1]["tpr"] > 5 * table[0]["tpr"] + 0.02  # the naive reading: "atypical records leak"
    assert table[-1]["fpr"] > 0.03  # ...but they are flagged as often when OUT
    for r in table:
        lo, hi = r["excess_ci95"]
        assert lo <= 0.0 <= hi, r
        assert r["tpr_ci95"][0] <= r["tpr"] <= r["tpr_ci95"][1]
    false_alarm, excess = excess_sets(rv.flags, member, rv.cut)
    vul_auc = mann_whitney(atypical[rv.vulnerable], atypical[~rv.vulnerable])["auroc"]
    fa_auc = mann_whitney(atypical[false_alarm], atypical[~false_alarm])["auroc"]
    assert vul_auc > 0.9 and fa_auc > 0.9  # the raw link is all false-alarm
    # excess-vulnerable records: as many as chance allows, and no more atypical than the rest
    assert excess.sum() < 0.01 * N


def test_leak_confined_to_atypical_records_shows_as_excess(rng):
    scores, member, atypical = _scores(rng, leak=4.0)
    rv = record_vulnerability(scores, member, 0.01)
    table = decile_table(atypical, rv.flags, member, rng=np.random.default_rng(1))
    assert table[-1]["excess_ci95"][0] > 0.1 and table[0]["excess_ci95"][0] <= 0.0 <= table[0]["excess_ci95"][1]
    measures = {name: atypical for name in ("centroid_distance", "knn_disagreement", "lof", "memorisation")}
    measures |= {"confidence_out": -atypical, "margin_out": -atypical}  # low = atypical for these two
    st = measure_statistics(measures, rv, rv.audited, np.random.default_rng(2))
    summary = excess_summary(st, rv)
    auc = summary["auroc_atypical"]["confidence_out"]
    assert auc["excess_vulnerable"] > 0.85 and summary["n_excess_vulnerable"] > 50
    assert "beyond false alarms" in summary["statement"]


def test_decile_table_reports_merged_bins():
    values = np.repeat(np.arange(4.0), 50)  # four distinct values: at most 4 bins
    flags = np.zeros((2, 200), bool)
    member = np.zeros((2, 200), bool)
    member[0] = True
    table = decile_table(values, flags, member)
    assert len(table) < 10 and all(r["n_bins"] == len(table) for r in table)
