"""The plain-text summary table: intervals as half-widths, unreliable marks, records at risk beyond chance."""

from miaudit.report.summary import format_summary, pct_ci


def test_summary_shows_half_width_and_keeps_unreliable_marks():
    assert pct_ci(0.731, [0.727, 0.735]) == "73.1±0.4%"
    assert pct_ci(0.5, None) == "50.0%"
    results = {
        "config": {"audit": {"bootstrap": 200}},
        "attacks": {
            "loss": {
                "auc": 0.71, "advantage": 0.3, "knowledge": "none",
                "tpr_at_fpr": {"0.001": 0.002, "0.01": 0.02},
                "reliable": {"0.001": False, "0.01": True},
                "ci95": {"auc": [0.70, 0.72], "advantage": [0.29, 0.31],
                         "tpr_at_fpr": {"0.001": [0.0, 0.004], "0.01": [0.015, 0.025]}},
            }
        },
    }
    text = format_summary(results)
    assert "71.0±1.0%" in text and "0.2±0.2%*" in text and "2.0±0.5%" in text
    assert "(200 resamples)" in text and "* backed by fewer" in text


def test_summary_leads_with_records_at_risk_beyond_chance():
    from miaudit.report.summary import records_at_risk

    attacks = {
        "rmia-online": {"auc": 0.8, "advantage": 0.4, "knowledge": "online", "tpr_at_fpr": {"0.001": 0.02, "0.01": 0.0771},
                        "reliable": {"0.001": True, "0.01": True}, "ci95": {"tpr_at_fpr": {"0.01": [0.0731, 0.0811]}},
                        "per_target": [{"n_members": 10000}, {"n_members": 10000}]},
        "loss": {"auc": 0.7, "advantage": 0.3, "knowledge": "none", "tpr_at_fpr": {"0.001": 0.001, "0.01": 0.012},
                 "reliable": {}, "per_target": [{"n_members": 10000}]},
    }
    text = format_summary({"attacks": attacks})
    assert ("records at risk beyond chance: ≈ 671 ± 40 of a model's 10,000 training records "
            "(rmia-online flags ≈ 771 at 1% FPR; a random guess ≈ 100)") in text
    # null case: an attack at chance puts no record at risk (never a negative count)
    null = records_at_risk({"tpr_at_fpr": {"0.01": 0.009}, "per_target": [{"n_members": 500}],
                            "ci95": {"tpr_at_fpr": {"0.01": [0.0, 0.02]}}})
    assert null["excess"] == 0.0 and null["excess_ci"] == [0.0, 5.0] and round(null["chance"]) == 5
    del attacks["loss"]
    attacks["rmia-online"]["tpr_at_fpr"]["0.01"] = 0.0105
    attacks["rmia-online"]["ci95"]["tpr_at_fpr"]["0.01"] = [0.008, 0.013]
    assert "a random guess ≈ 100) - within chance" in format_summary({"attacks": attacks})
    assert "within chance" not in text
