"""The verdict: levels as multiples of chance, the wording of the verdict box, the headline FPR."""

from __future__ import annotations

import json

import pytest
from fake_run import attack_result, make_run
from report_pages import verdict_box

from miaudit.report.render import render
from miaudit.report.run_page import build_context
from miaudit.report.verdict import LEVELS, chance_like, headline_key, level_of, level_scale, outlier_strength


def test_verdict_says_it_in_plain_words_with_badge_chance_and_thresholds(tmp_path):
    html, md = render(build_context(make_run(tmp_path / "run")))
    top = verdict_box(html)
    assert 'class="badge badge-elevated">Elevated leakage<' in top
    assert "strongest attack (<b>LiRA online, fixed variance</b>)" in top
    assert "<b>7.7±0.4%</b>" in top and "against 1% expected by chance" in top
    # the headline is the excess over chance (770 flagged - 100 a random guess flags), chance beside it
    assert "about <b>670 ± 41 of its 10,000 training records are at risk beyond chance</b>" in top
    assert "the attack flags about 770 of them; a random guess would flag about 100" in top
    assert "Records at risk beyond chance</div>" in top and "≈ 670</div>" in top
    assert "≈ 670 of 10,000 (flagged ≈ 770, random guess ≈ 100)" in md
    assert "<b>100.0% train / 85.3% test accuracy</b>" in top
    assert "1,712 of the 20,000 audited records" in top and "clearly distinguishable from chance" in top
    for threshold in ("below 2%", "2% to 10%", "10% and above"):  # the levels are stated on the page
        assert threshold in top
    assert "The gap of 14.7 percentage points" in top  # from the rounded figures shown
    assert md.startswith("# Membership-inference audit: synthetic-purchase\n")
    assert "**ELEVATED LEAKAGE** — **7.7%** of training records" in md and "**7.7±0.4%**" in md


def test_a_level_above_low_whose_interval_reaches_chance_is_marked_uncertain(tmp_path):
    root = make_run(tmp_path / "run", vulnerability=False)
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["lira-online-fixed"] = attack_result(0.6, 0.12, [0.004, 0.25], 0.01, "online")
    (root / "results.json").write_text(json.dumps(res))
    top = verdict_box(render(build_context(root))[0])
    assert ">High leakage (uncertain)<" in top and "<b>indistinguishable from chance</b>" in top


@pytest.mark.parametrize(("tpr", "level"), [(0.0199, "low"), (0.02, "elevated"), (0.0999, "elevated"), (0.1, "high")])
def test_levels_are_multiples_of_chance(tpr, level):
    assert level_of(tpr, 0.01) == level
    assert level_of(tpr / 10, 0.001) == level  # the same multiple of another headline FPR
    assert [name for name, _ in LEVELS] == ["low", "elevated", "high"]


def test_a_rate_within_chance_and_a_chance_like_vulnerable_set_are_said_plainly(tmp_path):
    root = make_run(tmp_path / "run")
    res = json.loads((root / "results.json").read_text())
    res["attacks"]["lira-online-fixed"] = attack_result(0.52, 0.012, [0.007, 0.017], 0.001, "online")
    res["attacks"]["loss"] = attack_result(0.51, 0.011, [0.008, 0.014], 0.001, "none")
    res["vulnerability"].update(set_size=13, chance_expected=11.84, distinguishable_from_chance=False, p_value=0.31)
    (root / "results.json").write_text(json.dumps(res))
    html, md = render(build_context(root))
    top = verdict_box(html)
    assert "badge-low" in top and "<b>indistinguishable from chance</b>, so no record is shown to be at risk" in top
    assert "this is <b>indistinguishable from chance</b> (p = 0.31)" in top
    vul = html.split('id="vulnerable"')[1]
    assert "indistinguishable from chance" in vul
    assert "**indistinguishable from chance**, so no record is shown to be at risk" in md


def test_level_scale_states_the_thresholds_at_the_headline_fpr():
    assert [s["range"] for s in level_scale(0.01)] == ["below 2%", "2% to 10%", "10% and above"]
    assert [s["range"] for s in level_scale(0.001)] == ["below 0.2%", "0.2% to 1%", "1% and above"]
    assert [s["title"] for s in level_scale(0.01)] == ["Low leakage", "Elevated leakage", "High leakage"]


def test_headline_key_is_one_percent_else_the_closest_measured_fpr():
    def run(*keys):
        return {"a": {"tpr_at_fpr": {k: 0.1 for k in keys}}}

    assert headline_key(run("0.001", "0.01", "0.1")) == "0.01"
    assert headline_key(run("0.0", "0.001", "0.05")) == "0.05"  # |log 5| < |log 0.1|
    assert headline_key(run("0.005", "0.02")) == "0.005"  # equally far on a log scale: the lower FPR
    assert headline_key(run("0.0")) == "0.0" and headline_key({}) is None and headline_key(run()) is None


def test_chance_like_is_an_interval_reaching_chance():
    assert chance_like(0.05, [0.01, 0.09], 0.01)  # the lower end at chance itself
    assert not chance_like(0.05, [0.0101, 0.09], 0.01)
    assert chance_like(0.01, None, 0.01) and not chance_like(0.02, None, 0.01)  # no interval: the estimate
    assert chance_like(0.02, [None, 0.03], 0.01) is False and chance_like(None, None, 0.01)


@pytest.mark.parametrize(("auroc", "strength"), [(0.5, "not"), (0.5999, "not"), (0.6, "tend"), (0.6999, "tend"),
                                                 (0.7, "outliers"), (0.99, "outliers")])
def test_outlier_finding_thresholds(auroc, strength):
    assert outlier_strength(auroc) == strength
