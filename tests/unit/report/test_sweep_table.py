"""The sweep's table: rows from a variant's results, the Pareto front, sweep.csv and sweep.md."""

from __future__ import annotations

import csv
import math

import pytest
from fake_run import attack_result

from miaudit.report.sweep_table import pareto_front, utility_leakage, variant_rows, write_tables

NAN = float("nan")


@pytest.mark.parametrize(("points", "front"), [
    ([(0.9, 0.05), (0.8, 0.02), (0.7, 0.03), (0.9, 0.04)], [False, True, False, True]),
    ([(0.9, 0.05), (0.9, 0.05)], [True, True]),  # equal points: neither beats the other
    ([(0.9, 0.05), (0.9, 0.06)], [True, False]),  # as useful and leaks more: dominated
    ([(NAN, 0.01), (0.5, 0.5), (0.6, NAN)], [False, True, False]),  # a missing figure is never on the front
    ([], []),
])
def test_pareto_front_known_answers(points, front):
    assert pareto_front(points) == front


def _results() -> dict:
    base = {"lira-online-fixed": attack_result(0.79, 0.077, [0.073, 0.081], 0.021, "online"),
            "loss": attack_result(0.73, 0.014, [0.013, 0.015], 0.001, "none")}
    attackers = {
        "non-adaptive": {"loss": attack_result(0.60, 0.012, [0.011, 0.013], 0.001, "none"),
                         "entropy": attack_result(0.58, 0.011, [0.010, 0.012], 0.001, "none"),
                         "lira-online-fixed": attack_result(0.66, 0.020, [0.018, 0.022], 0.002, "online")},
        "adaptive": {"loss": attack_result(0.62, 0.012, [0.011, 0.013], 0.001, "none"),
                     "entropy": attack_result(0.58, 0.011, [0.010, 0.012], 0.001, "none"),
                     "lira-online-fixed": attack_result(0.70, 0.031, [0.028, 0.034], 0.004, "online")},
        "label-only": {"label-only-gap": attack_result(0.55, 0.0, [0.0, 0.0], 0.0, "none")},
    }
    return {"config": {"train": {"recipes": [{"name": "l2"}, {"name": "mixup"}]}},
            "pool": {"dp": {"epsilon_max": 3.5}},
            "utility": {"train_acc": 0.99, "test_acc": 0.85}, "attacks": base,
            "defences": {"logit-reweighting": {"attackers": attackers,
                                               "utility": {"after": {"train_acc": 0.98, "test_acc": 0.84}}}}}


def test_a_defence_row_takes_each_attacks_stronger_attacker():
    rows = variant_rows("v", _results(), {"members_train_s": [10.0, 12.0, None]})
    assert [r["variant"] for r in rows] == ["v", "v+logit-reweighting"]
    plain, defended = rows
    assert plain["recipes"] == "l2+mixup" and plain["train_s_per_model"] == 11.0 and plain["epsilon"] == 3.5
    assert plain["strongest"] == "lira-online-fixed" and "attacker" not in plain["attacks"]["loss"]
    cells = defended["attacks"]
    assert cells["lira-online-fixed"]["attacker"] == "adaptive" and cells["lira-online-fixed"]["tpr@1%"] == 0.031
    assert cells["loss"]["attacker"] == "adaptive"  # equal TPR: the higher AUC
    assert cells["entropy"]["attacker"] == "non-adaptive"  # equal in both: the attacker listed first
    assert cells["label-only-gap"]["attacker"] == "label-only"
    assert defended["strongest"] == "lira-online-fixed" and defended["test_acc"] == 0.84
    assert utility_leakage(defended) == (0.84, 0.031)
    empty = variant_rows("e", {"attacks": {}, "utility": {}}, {})[0]
    assert empty["strongest"] is None and all(math.isnan(x) for x in utility_leakage(empty))


def test_tables_round_trip_every_figure_and_mark_the_front(tmp_path):
    rows = variant_rows("v", _results(), {"members_train_s": [10.0]})
    write_tables(tmp_path, rows)
    with open(tmp_path / "sweep.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [t["variant"] for t in table] == ["v", "v+logit-reweighting"]
    assert [t["pareto"] for t in table] == ["1", "1"]  # more useful vs more private: both on the front
    assert float(table[0]["lira-online-fixed.tpr@1%"]) == 0.077 and float(table[0]["lira-online-fixed.tpr@1%_lo"]) == 0.073
    assert table[0]["label-only-gap.auc"] == "" and float(table[1]["label-only-gap.auc"]) == 0.55  # no such attack: empty
    assert table[1]["epsilon"] == "3.5" and table[0]["strongest_attack"] == "lira-online-fixed"
    md = (tmp_path / "sweep.md").read_text(encoding="utf-8")
    assert "| v | 99.0 | 85.0 | 10.0 | 3.50 | lira-online-fixed | 79.0 [78.8, 79.2] |" in md
    assert "| v+logit-reweighting (adaptive) | 70.0 [69.8, 70.2] |" in md and md.count("| ✓ |") == 2
