"""`audit --signals` runs the per-record analysis from the signals alone (issue 16, item 3).

Fabricated signals (no training): 8 models, a balanced membership design, random logits; in
the leaky case the first 30 records get a large true-class logit only in the models trained on
them, so they must be the vulnerable set, and memorisation must be high for them. In the null
case nothing leaks, so the set must be indistinguishable from chance, also for LiRA online, whose
IN flags are correlated across targets (the chance control is a permutation of the design).
"""

import csv
import json

import numpy as np
import pytest

from miaudit import audit_signals
from miaudit.pipeline.configure import load_config
from miaudit.pipeline.pool import membership_design

M, N, P, C, LEAKY = 8, 600, 300, 5, 30


def _signals(tmp_path, rng, leak: float, design_seed: int = 0):
    in_mask = membership_design(M, N, design_seed)  # (M, N) bool, each record IN half of the models
    labels = rng.integers(0, C, N)
    logits = rng.normal(size=(M, N, C)).astype(np.float32)
    rows = np.arange(LEAKY)
    logits[:, rows, labels[rows]] += (leak * in_mask[:, rows]).astype(np.float32)
    path = tmp_path / "s.npz"
    np.savez(path, logits=logits, labels=labels, in_mask=in_mask,
             population_logits=rng.normal(size=(M, P, C)).astype(np.float32),
             population_labels=rng.integers(0, C, P))
    return path


def _config(attacks: str = "loss,lira-online-fixed,rmia-offline"):
    return load_config(None, [f"pool.n_models={M}", f"audit.attacks=[{attacks}]", "audit.bootstrap=0"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_audit_of_signals_writes_the_vulnerable_records_from_logits_alone(tmp_path, rng):
    out = tmp_path / "audit"
    res = audit_signals(_signals(tmp_path, rng, leak=8.0), out, _config())
    v = res["vulnerability"]
    # the leaky records, and essentially only they, are vulnerable; far above chance
    with open(out / "vulnerable_records.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    vulnerable = {int(r["record_id"]) for r in rows if r["vulnerable"] == "1"}
    assert len(vulnerable & set(range(LEAKY))) >= 0.9 * LEAKY and len(vulnerable - set(range(LEAKY))) <= 3
    # the permutation control: the set beats every one of the R random designs, p at its floor 1/(1+R)
    r = v["chance_permutations"]
    assert v["chance_method"] == "permutation" and r == 20 and len(v["permutation_null_counts"]) == r
    assert v["distinguishable_from_chance"] and v["p_value"] <= 1 / (1 + r)
    assert v["set_size"] > 2 * v["chance_expected"] and v["set_size"] > 10 * v["chance_expected_binomial"]
    assert v["by_alpha"]["0.001"]["chance_permutations"] == r
    assert v["stability"]["across_targets"]["jaccard_mean"] > v["stability"]["across_targets"]["chance_jaccard_mean"]
    # logit measures only, with the reason the feature measures are missing
    assert set(v["statistics"]) == {"confidence_out", "margin_out", "memorisation"}
    assert set(v["skipped_measures"]) == {"centroid_distance", "knn_disagreement", "lof"}
    assert {"tsne.png", "gradcam.png", "gallery.png"} == set(v["skipped_figures"])
    assert "centroid_distance" not in rows[0] and "memorisation" in rows[0]
    memo = np.array([float(r["memorisation"]) for r in rows])
    leaky = np.array([int(r["record_id"]) < LEAKY for r in rows])
    assert memo[leaky].min() > memo[~leaky].max()  # IN-OUT confidence gap of the planted leak
    assert v["statistics"]["memorisation"]["vs_random_sample"]["auroc"] > 0.9  # up to 3 of the set may be chance picks (asserted above)
    # the file is ordered by the ranking: TP frequency, vulnerability, then the score beyond non-members
    # (the vulnerability clipped at its lowest ceiling, log10(1 + fewest non-members of a target))
    ceiling = np.log10(1 + min(t["n_nonmembers"] for t in res["attacks"][v["attack"]]["per_target"]))
    key = [(float(r["tp_frequency"]), round(min(float(r["vulnerability"]), ceiling), 3), float(r["score_beyond_nonmembers"]))
           for r in rows]
    assert key == sorted(key, reverse=True)
    # results, summary and report say it
    assert json.loads((out / "results.json").read_text())["vulnerability"]["set_size"] == v["set_size"]
    summary = (out / "summary.txt").read_text()
    assert "vulnerable records" in summary and "not computed from signals alone: centroid_distance" in summary
    html = (out / "report.html").read_text()
    assert 'id="vulnerable"' in html and "Not computed from signals alone" in html and "<code>lof</code>" in html
    md = (out / "report.md").read_text()
    assert "Vulnerable records" in md and "`knn_disagreement`" in md
    assert (out / "analysis" / "top_vulnerable.md").is_file() and (out / "figures" / "deciles.png").is_file()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", range(4))  # 8 seeds, without the report: vulnerability/test_chance.py
def test_audit_of_signals_without_leakage_finds_a_set_within_chance(tmp_path, seed):
    """LiRA online forced: on this null pool it finds several records flagged in half their IN targets
    (0.36 expected by independent flags, which called them distinguishable for most seeds)."""
    rng = np.random.default_rng(seed)
    res = audit_signals(_signals(tmp_path, rng, leak=0.0, design_seed=seed), tmp_path / "audit",
                        _config("lira-online-fixed"))
    v = res["vulnerability"]
    assert v["attack"] == "lira-online-fixed" and v["chance_method"] == "permutation"
    assert not v["distinguishable_from_chance"] and v["p_value"] > 0.05
    assert "NOT distinguishable from chance" in v["statement"]
    assert v["set_size"] <= max(v["permutation_null_counts"]) + 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_logit_measures_are_independent_of_a_reference_free_attack_on_a_null_pool(tmp_path, rng):
    res = audit_signals(_signals(tmp_path, rng, leak=0.0), tmp_path / "audit", _config("loss"))
    v = res["vulnerability"]
    assert not v["distinguishable_from_chance"]
    # what models that never saw a record say of it is independent of the loss attack's IN scores here
    # (not of LiRA online's: its score is the target's output against those very OUT models)
    assert abs(v["statistics"]["confidence_out"]["spearman_vs_vulnerability"]["rho"]) < 0.15


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_audit_of_signals_can_skip_the_analysis(tmp_path, rng):
    cfg = load_config(None, [f"pool.n_models={M}", "audit.attacks=[loss]", "audit.bootstrap=0",
                             "analysis.vulnerability=false"])
    res = audit_signals(_signals(tmp_path, rng, leak=8.0), tmp_path / "audit", cfg)
    assert "vulnerability" not in res and not (tmp_path / "audit" / "vulnerable_records.csv").exists()


# random logits on a 2-model pool: threshold attacks may land below chance by luck; not what this tests
@pytest.mark.filterwarnings("ignore::miaudit.errors.BelowChanceWarning")
def test_audit_skips_attacks_the_pool_cannot_support(tmp_path, rng):
    """Two models: offline attacks lack an OUT reference for half the records; no population: no RMIA."""
    m, n, c = 2, 40, 3
    in_mask = np.array([[True, False] * (n // 2), [False, True] * (n // 2)])
    np.savez(tmp_path / "s.npz", logits=rng.normal(size=(m, n, c)).astype(np.float32),
             labels=rng.integers(0, c, n), in_mask=in_mask)
    with pytest.warns(UserWarning, match="skipped"):
        res = audit_signals(tmp_path / "s.npz")
    assert {"loss", "entropy", "label-only-gap"} <= set(res["attacks"])
    assert "population" in res["skipped_attacks"]["rmia-online"]
    assert "per record" in res["skipped_attacks"]["lira-offline-fixed"]
    assert "OUT reference" in res["skipped_attacks"]["calibrated-loss"]
    assert "label-only-augment" not in res["attacks"]
