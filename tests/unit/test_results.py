"""The results document: one key order, and the one "strongest attack" rule with its tie-breaks."""

from __future__ import annotations

import json

import pytest

from miaudit.metrics import fpr_key
from miaudit.results import (
    HEADLINE_FPR,
    HEADLINE_KEY,
    RESULTS_SCHEMA_VERSION,
    attack_strength,
    rank_attacks,
    results_document,
    strongest,
    strongest_of,
)


def _doc(**extra):
    return results_document(
        config={"seed": 3}, seed=3, versions={"miaudit": "x"},
        data={"name": "d", "kind": "tabular", "n_records": 10, "n_classes": 2, "splits": {"audit": 10}},
        pool={"n_models": 4, "targets": [0]}, utility={"train_acc": 1.0}, attacks={}, skipped_attacks={},
        warnings=[], **extra,
    )


def test_results_document_keys_in_the_one_order_whatever_the_arguments():
    plain = _doc()
    assert list(plain) == ["schema_version", "config", "seed", "versions", "data", "pool", "utility", "attacks",
                           "skipped_attacks", "warnings"]
    assert plain["schema_version"] == RESULTS_SCHEMA_VERSION
    full = _doc(source={"signals": "s.npz"}, pool_fingerprint="abc")  # keywords given out of order
    assert list(full) == ["schema_version", "config", "pool_fingerprint", "seed", "versions", "source", "data",
                          "pool", "utility", "attacks", "skipped_attacks", "warnings"]
    # the JSON text follows the dict order: two equal documents are byte-identical files
    assert json.dumps(_doc(pool_fingerprint="abc", source={"signals": "s.npz"})) == json.dumps(full)


def test_headline_key_is_the_metrics_key_of_the_headline_fpr():
    assert fpr_key(HEADLINE_FPR) == HEADLINE_KEY


def test_rank_attacks_breaks_ties_by_auc_then_name():
    assert rank_attacks({"b": (0.1, 0.6), "a": (0.1, 0.6), "c": (0.1, 0.7)}) == ["c", "a", "b"]
    # TPR first: a higher TPR wins over a higher AUC
    assert rank_attacks({"auc-king": (0.01, 0.99), "tpr-king": (0.02, 0.51)}) == ["tpr-king", "auc-king"]
    assert rank_attacks({}) == [] and strongest_of({}) is None


def test_a_missing_tpr_or_auc_counts_as_zero():
    assert rank_attacks({"none": (None, 0.9), "zero": (0.0, 0.8)}) == ["none", "zero"]  # both TPR 0: AUC decides
    assert rank_attacks({"none": (None, None), "zero": (0.0, 0.0)}) == ["none", "zero"]  # all equal: the name
    assert strongest_of({"x": (None, None), "y": (0.05, None)}) == "y"


def test_strongest_reads_the_results_layout_at_the_chosen_fpr():
    attacks = {
        "loss": {"auc": 0.60, "tpr_at_fpr": {"0.01": 0.02, "0.1": 0.30}},
        "rmia": {"auc": 0.70, "tpr_at_fpr": {"0.01": 0.05, "0.1": 0.25}},
        "broken": {"auc": 0.95},  # no TPR at all (e.g. an attack that wrote none): TPR 0
    }
    assert attack_strength(attacks) == {"loss": (0.02, 0.60), "rmia": (0.05, 0.70), "broken": (None, 0.95)}
    assert strongest(attacks) == "rmia"
    assert strongest(attacks, fpr="0.1") == "loss"
    assert strongest(attacks, fpr="0.5") == "broken"  # no attack has that FPR: AUC decides
    assert strongest({}) is None


def test_read_results_refuses_a_newer_schema_and_a_foreign_file(tmp_path):
    from miaudit.errors import DataError
    from miaudit.results import RESULTS_SCHEMA_VERSION, read_results

    ok = tmp_path / "ok.json"
    ok.write_text('{"schema_version": %d, "attacks": {}}' % RESULTS_SCHEMA_VERSION)
    assert read_results(ok)["attacks"] == {}
    newer = tmp_path / "newer.json"
    newer.write_text('{"schema_version": %d}' % (RESULTS_SCHEMA_VERSION + 1))
    with pytest.raises(DataError, match="upgrade miaudit"):
        read_results(newer)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_results(listing)
