"""A hand-built finished run directory (the layout `miaudit run` writes), small fixed numbers:
what the report's unit tests render."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import yaml


def write_png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def attack_result(auc: float, tpr1: float, ci1: list[float], tpr01: float, knowledge: str, *, reliable01: bool = False,
            n_members: int = 10000, n_nonmembers: int = 9900) -> dict:
    per = {"n_members": n_members, "n_nonmembers": n_nonmembers}
    return {
        "auc": auc, "advantage": auc - 0.35, "knowledge": knowledge,
        "tpr_at_fpr": {"0.0": 0.0, "0.001": tpr01, "0.01": tpr1, "0.1": 0.3},
        "fpr_achieved": {"0.0": 0.0, "0.001": 0.001, "0.01": 0.01, "0.1": 0.1},
        "reliable": {"0.0": False, "0.001": reliable01, "0.01": True, "0.1": True},
        "ci95": {"auc": [auc - 0.002, auc + 0.002], "advantage": [auc - 0.354, auc - 0.346],
                 "tpr_at_fpr": {"0.0": [0.0, 0.0], "0.001": [tpr01 - 0.002, tpr01 + 0.002], "0.01": ci1, "0.1": [0.29, 0.31]}},
        "ppv": {"0.5": {"0.01": 0.885}, "0.01": {"0.01": 0.072}},
        "per_target": [per, per],
    }


VULNERABILITY = {
    "attack": "lira-online-fixed", "attack_choice": "strongest available: highest mean TPR", "alpha": 0.01, "cut": 0.5,
    "n_targets": 8, "set_size": 1712, "n_audited": 20000, "chance_expected": 11.84, "distinguishable_from_chance": True,
    "fdr_estimate": 0.0069, "p_value": 0.0,
    "by_alpha": {"0.001": {"set_size": 469, "chance_expected": 0.12, "distinguishable_from_chance": True, "reliable": False},
                 "0.01": {"set_size": 1712, "chance_expected": 11.84, "distinguishable_from_chance": True, "reliable": True}},
    "statistics": {
        "knn_disagreement": {"description": "share of k nearest unseen records with another label", "atypical_when": "high",
                             "vs_random_sample": {"auroc": 0.988, "p_value": 0.0},
                             "spearman_vs_vulnerability": {"rho": 0.79}},
        "confidence_out": {"description": "mean true-class probability under OUT models", "atypical_when": "low",
                           "vs_random_sample": {"auroc": 0.02, "p_value": 1e-200},
                           "spearman_vs_vulnerability": {"rho": -0.83}},
        "memorisation": {"description": "mean p_y IN minus OUT", "atypical_when": "high",
                         "vs_random_sample": {"auroc": 0.999, "p_value": 0.0}, "spearman_vs_vulnerability": {"rho": 0.83}},
    },
    "stability": {"across_targets": {"jaccard_mean": 0.73, "chance_jaccard_mean": 0.04}},
    "reason_counts": {"hard": 1588, "memorised": 1592},
    "top_records": [1000, 1001],
    "figures": ["figures/tsne.png", "figures/deciles.png", "../outside.png", "/etc/passwd.png"],
}


def make_run(root: Path, *, vulnerability: bool = True, defences: bool = False, extra_results: dict | None = None) -> Path:
    """A finished run directory with every file the report reads (small, fixed numbers)."""
    root.mkdir(parents=True, exist_ok=True)
    attacks = {
        "lira-online-fixed": attack_result(0.793, 0.077, [0.0736, 0.0818], 0.021, "online"),
        "loss": attack_result(0.733, 0.014, [0.013, 0.015], 0.001, "none"),
    }
    config = {
        "seed": 0,
        "data": {"name": "synthetic-purchase", "data_dir": str(root.resolve() / "secret-home" / "data")},
        "model": {"name": "fcn", "params": {"hidden": [1024, 512]}},
        "train": {"optimizer": "adam", "lr": 0.001, "epochs": 20, "batch_size": 128, "weight_decay": 0.0,
                  "recipes": [{"name": "targeted-augmentation",
                               "params": {"ranking_from": str(root.resolve() / "secret-home" / "runs" / "orig")}}]},
        "pool": {"n_models": 8},
        "audit": {"bootstrap": 200, "queries": 2},
        "analysis": {"top_k": 2},
        "defences": [{"name": "logit-reweighting", "params": {"w": 0.1}}] if defences else [],
    }
    results = {
        "schema_version": 1, "seed": 0, "config": config,
        "versions": {"miaudit": "0.1.0", "python": "3.11.7", "torch": "2.13.0+cpu"},
        "data": {"name": "synthetic-purchase", "kind": "tabular", "n_records": 31000, "n_classes": 100,
                 "input_shape": [600], "splits": {"audit": 20000, "population": 5000, "validation": 1000, "test": 5000}},
        "pool": {"n_models": 8, "targets": list(range(8))},
        "utility": {"train_acc": 0.9998, "test_acc": 0.8534},
        "attacks": attacks,
        "skipped_attacks": {"shokri": "needs <b>more</b> models"},
        "warnings": ["TPR at FPR 0.001 is backed by fewer than 10/FPR non-members per target"],
    }
    if vulnerability:
        results["vulnerability"] = copy.deepcopy(VULNERABILITY)
        write_png(root / "figures" / "tsne.png", (10, 120, 10))
        write_png(root / "figures" / "deciles.png", (10, 10, 120))
        rows = [["record_id", "label", "class_name", "vulnerable", "vulnerability", "tp_count", "n_in_targets",
                 "predicted_out", "reason", "planted"]]
        for i in range(30):
            rows.append([1000 + i, i % 3, f"class_{i % 3}" if i else "<script>alert(1)</script>", 1, 4.0 - i / 10, 4, 4,
                         (i + 1) % 3, "hard+memorised", "mislabelled" if i < 2 else ""])
        with open(root / "vulnerable_records.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    if defences:
        d_att = {"non-adaptive": {"loss": attack_result(0.6, 0.012, [0.011, 0.013], 0.001, "none")},
                 "adaptive": {"lira-online-fixed": attack_result(0.7, 0.031, [0.028, 0.034], 0.004, "online")},
                 "label-only": {"label-only-gap": attack_result(0.55, 0.0, [0.0, 0.0], 0.0, "none")}}
        results["defences"] = {"logit-reweighting": {
            "params": {"w": 0.1}, "argmax_changed": 0.0, "attackers": d_att, "skipped": {},
            "utility": {"before": {"train_acc": 0.9998, "test_acc": 0.8534}, "after": {"train_acc": 0.9998, "test_acc": 0.8534}}}}
    results.update(extra_results or {})
    (root / "results.json").write_text(json.dumps(results))
    (root / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    (root / "run.json").write_text(json.dumps({"device": "cpu", "threads": 2, "machine": {"argv": f"{root}/secret-home/bin/miaudit"}}))
    (root / "timing.json").write_text(json.dumps({"total_s": 125.7, "stages_s": {"attacks": 42.6, "analysis": 79.4},
                                                  "members_train_s": [130.0, 122.0]}))
    write_png(root / "figures" / "roc.png")
    return root
