"""Target audits, the parts that need no trained model: reading weights safely, the accuracy check,
the identifiable count and its sentence. Whole target audits: tests/integration/test_target.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from miaudit.errors import TargetError
from miaudit.io import save_weights
from miaudit.pipeline.target import ACCURACY_GAP, accuracy_comparison, identifiable, read_state_dict
from miaudit.report.summary import target_headline as headline


class _Payload:
    def __reduce__(self):
        return (print, ("ran code",))


def test_state_dicts_are_read_from_safetensors_or_a_plain_pt(tmp_path):
    w = {"fc.weight": torch.randn(2, 3), "fc.bias": torch.zeros(2)}
    save_weights(tmp_path / "m.safetensors", w)
    torch.save(w, tmp_path / "m.pt")
    for name in ("m.safetensors", "m.pt"):
        got = read_state_dict(tmp_path / name)
        assert got.keys() == w.keys() and all(torch.equal(got[k], w[k]) for k in w), name


def test_anything_but_a_plain_state_dict_is_refused_without_running_it(tmp_path, capsys):
    torch.save({"w": torch.zeros(1), "payload": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(TargetError, match="not a plain state_dict .refused, never unpickled"):
        read_state_dict(tmp_path / "evil.pt")
    assert "ran code" not in capsys.readouterr().out
    torch.save({"w": torch.zeros(1), "epoch": 3}, tmp_path / "ckpt.pth")  # loads safely, but is not a state_dict
    with pytest.raises(TargetError, match="a mapping of names to tensors"):
        read_state_dict(tmp_path / "ckpt.pth")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(TargetError, match="target.weights .*not a readable safetensors file"):
        read_state_dict(tmp_path / "m.safetensors")
    with pytest.raises(TargetError, match="unknown format .h5"):
        read_state_dict(tmp_path / "m.h5")


def test_accuracy_comparison_warns_only_beyond_the_gap():
    refs = [{"train_acc": 0.9, "test_acc": 0.7}, {"train_acc": 0.8, "test_acc": 0.7}]
    close = {"per_model": [*refs, {"train_acc": 0.85 + ACCURACY_GAP / 2, "test_acc": 0.7}]}
    out, warnings = accuracy_comparison(close, 2)
    assert out["references"] == {"train_acc": pytest.approx(0.85), "test_acc": pytest.approx(0.7)}
    assert warnings == []
    far = {"per_model": [*refs, {"train_acc": 0.85, "test_acc": 0.7 - 2 * ACCURACY_GAP}]}
    _, warnings = accuracy_comparison(far, 2)
    assert len(warnings) == 1 and warnings[0].startswith("the target's test accuracy")
    alone, none = accuracy_comparison({"per_model": [{"train_acc": 1.0, "test_acc": 0.5}]}, 0)
    assert "references" not in alone and none == []


def test_identifiable_counts_the_members_above_the_non_members_threshold():
    member = np.array([True] * 100 + [False] * 100)
    scores = np.concatenate([np.arange(100, 200), np.arange(100)]).astype(float)  # every member above every non-member
    results = {"attacks": {"loss": {"auc": 1.0, "tpr_at_fpr": {"0.01": 1.0}, "ci95": {"tpr_at_fpr": {"0.01": [0.97, 1.0]}}},
                           "weak": {"auc": 0.5, "tpr_at_fpr": {"0.01": 0.01}}}}
    found = identifiable(results, {"loss": scores[None], "weak": scores[None]}, member)
    assert found["attack"] == "loss" and found["n_identifiable"] == 100 and found["n_nonmembers_flagged"] <= 1
    assert found["chance_expected"] == 1.0 and found["above_chance"] is True
    assert headline(found).startswith("100 of your 100 audited training records are identifiable at 1% FPR (loss)")
    assert "more than chance explains (TPR 95% interval 97.0%–100.0% vs 1%)" in headline(found)
    weak = identifiable(results, {"loss": scores[None], "weak": scores[None]}, member, attack="weak")
    assert weak["above_chance"] is None and headline(weak).endswith("(no bootstrap: audit.bootstrap = 0)")
    assert identifiable({"attacks": {}}, {}, member) == {} and headline({}) == "no attack ran on the target"
